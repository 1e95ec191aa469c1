"""Three `byob worker` processes on one PostgreSQL queue, 50 connections × 3 models: every
transfer runs, none twice at once, and a worker killed with SIGKILL mid-transfer leaves a job
that another worker finishes, with no row lost or duplicated."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.dataset as ds
import pytest

from byob.workers import queue as q
from tests.support import (
    TEST_SECRET_KEY,
    TEST_SIGNING_KEY,
    activate,
    create,
    make_services,
    pg_exec,
    validate,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

TENANTS = [f"tenant_{i:02d}" for i in range(50)]
MODELS = ("orders", "refunds", "events")
ROWS_PER_TENANT = 4_000


@pytest.fixture
def state_db(pg_server_url: str) -> Any:
    name = f"state_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield pg_server_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_three_workers_one_killed(tmp_path: Path, pg_url: str, state_db: str) -> None:
    for model in MODELS:
        pg_exec(
            pg_url,
            f"CREATE TABLE {model} (id bigint PRIMARY KEY, tenant_id text NOT NULL, payload text, "
            "updated_at timestamptz NOT NULL)",
            f"INSERT INTO {model} SELECT i, 'tenant_' || lpad((i % 50)::text, 2, '0'), "
            "repeat(md5(i::text), 8), now() - interval '1 hour' "
            f"FROM generate_series(1, {ROWS_PER_TENANT * len(TENANTS)}) AS i",
        )
    config = write_config(
        tmp_path / "byob.toml",
        pg_url,
        [
            {
                "name": m,
                "table": m,
                "tenant_column": "tenant_id",
                "cursor_column": "updated_at",
                "primary_key": ["id"],
            }
            for m in MODELS
        ],
    )
    app = make_services(tmp_path, config, database_url=state_db)
    out = tmp_path / "out"
    for tenant in TENANTS:
        conn = create(app, name=tenant, tenant=tenant, type="local", path=str(out / tenant))
        validate(app, conn.name)
        activate(app, conn.name)

    jobs = q.make_queue(state_db)
    q.ensure_schema(jobs, app.adapters.state)
    app.transfers.dispatcher = dispatcher = q.QueueDispatcher(app, jobs)
    for tenant in TENANTS:
        assert app.transfers.trigger(tenant, actor="cli").queued == list(MODELS)
        assert app.transfers.trigger(tenant, actor="cli").busy == list(MODELS)  # one waiting
    dispatcher.shutdown()

    env = dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_DATABASE_URL": state_db,
        "BYOB_SECRET_KEY": TEST_SECRET_KEY,
        "BYOB_SIGNING_KEY": TEST_SIGNING_KEY,
        "BYOB_SETTLE_LAG_SECONDS": "0",
    }
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(3)]  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "byob.cli", "worker", "--concurrency", "1", "--name", f"w{i}"],
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(3)
    ]
    try:
        victim = workers[0]
        # Kill w0 while it is inside a transfer: its latest job has started and that job's
        # transfer record is running (its window is fixed and files may be on their way).
        wait_for(
            lambda: _mid_transfer(tmp_path / "worker0.log", state_db),
            timeout=120,
            what="worker 0 to be mid-transfer",
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        # The stalled job is requeued (periodic, every 15 s) and finished by another worker.
        wait_for(
            lambda: _jobs_done(state_db) == len(TENANTS) * len(MODELS),
            timeout=300,
            what="every job to finish",
        )
    finally:
        for w in workers[1:]:
            w.send_signal(signal.SIGTERM)
        for w in workers[1:]:
            assert w.wait(timeout=120) == 0, "a worker did not drain and exit on SIGTERM"
        for log in logs:
            log.close()

    with psycopg.connect(state_db) as db:
        statuses = dict(
            db.execute("SELECT status, count(*) FROM transfers GROUP BY status").fetchall()
        )
        retried = db.execute("SELECT count(*) FROM transfers WHERE attempts > 1").fetchone()[0]
    assert set(statuses) == {"succeeded"}, statuses
    assert retried >= 1, "the killed worker's transfer was not resumed"
    for tenant in TENANTS:
        for model in MODELS:
            ids = (
                ds.dataset(out / tenant / model, format="parquet", partitioning="hive")
                .to_table(columns=["id"])
                .column("id")
                .to_pylist()
            )
            assert len(ids) == len(set(ids)) == ROWS_PER_TENANT, (tenant, model, len(ids))


def _mid_transfer(log: Path, url: str) -> bool:
    lines = log.read_text().splitlines()
    started = [line for line in lines if "Starting job byob.transfer" in line]
    if not started or "ended with status" in lines[-1]:
        return False
    match = re.search(r"model='(\w+)'.*connection_id='(\w+)'", started[-1])
    if match is None:
        return False
    model, connection_id = match.groups()
    with psycopg.connect(url) as db:
        return bool(
            db.execute(
                "SELECT count(*) FROM transfers WHERE connection_id = %s AND model = %s AND status = 'running'",
                (connection_id, model),
            ).fetchone()[0]
        )


def _jobs_done(url: str) -> int:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT count(DISTINCT (connection_id, model)) FROM transfers t WHERE status = 'succeeded' "
            "AND NOT EXISTS (SELECT 1 FROM transfers p WHERE p.connection_id = t.connection_id "
            "AND p.model = t.model AND p.status <> 'succeeded')"
        ).fetchone()[0]
