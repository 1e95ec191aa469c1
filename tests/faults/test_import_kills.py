"""Import runs under faults, each in a process of its own (tests/import_worker.py) against the
moto server and a real PostgreSQL: kill -9 at random points during loads, then a full run;
two workers racing on one connection. After each, every file's rows are in the table exactly
once and the ledger has one row per file, with its row count."""

from __future__ import annotations

import functools
import gzip
import json
import random
import signal
import time
from typing import Any

import psycopg
import pytest

from byob.demo.emulator import LocalAws
from byob.sources.import_target import LEDGER, PostgresImportTarget
from tests import import_worker
from tests.support import CUSTOMER, pg_exec, wait_for

pytestmark = pytest.mark.integration

BUCKET = "acme-usage"
FILES = 6
ROWS = 300_000  # per file: a load long enough (about a second) for a kill to land inside it


@functools.cache
def file_body(number: int) -> bytes:
    """File ``number``'s rows, each account naming its file, so each file's rows can be
    counted in the table."""
    rows = (
        f"f{number}-{i:06d},{i % 997}.{i % 1000:03d},2026-12-{1 + i % 28:02d}T10:00:00Z\n"
        for i in range(ROWS)
    )
    return import_worker.USAGE_HEADER + "".join(rows).encode()


@functools.cache
def gzipped(number: int) -> bytes:
    return gzip.compress(file_body(number), 1)


@pytest.fixture
def world(pg_url: str, aws: LocalAws) -> tuple[list[str], dict[str, str]]:
    """FILES files in the customer's bucket (every other one gzipped): their keys, and the
    environment a worker reads them with."""
    pg_exec(pg_url, import_worker.USAGE_DDL)
    PostgresImportTarget(pg_url).ensure_ledger()
    customer = aws.customer(CUSTOMER)
    customer.create_bucket(BUCKET)
    s3 = customer.client("s3")
    keys = []
    for number in range(FILES):
        body = file_body(number)
        key = f"in/2026/12/usage-{number}.csv" + (".gz" if number % 2 else "")
        s3.put_object(Bucket=BUCKET, Key=key, Body=gzipped(number) if number % 2 else body)
        keys.append(key)
    return keys, import_worker.customer_env(customer)


def assert_each_file_once(pg_url: str, keys: list[str]) -> None:
    with psycopg.connect(pg_url) as db:
        per_file = db.execute(
            "SELECT split_part(account, '-', 1), count(*), count(DISTINCT account), "
            "min(tenant_id), max(tenant_id) FROM usage_events GROUP BY 1 ORDER BY 1"
        ).fetchall()
        ledger = db.execute(
            f"SELECT object_key, rows FROM {LEDGER} WHERE connection_id = 'c1' ORDER BY 1"
        ).fetchall()
    assert per_file == [(f"f{n}", ROWS, ROWS, "acme", "acme") for n in range(FILES)]
    assert ledger == [(key, ROWS) for key in sorted(keys)]


def copying(pg_url: str) -> bool:
    """Whether a worker's COPY into the table is running right now."""
    with psycopg.connect(pg_url, autocommit=True) as db:
        found = db.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'COPY \"usage_events\"%%' AND state = 'active'"
        ).fetchone()
    return found is not None


def test_kill_9_during_loads_then_a_full_run_loads_each_file_once(
    world: tuple[list[str], dict[str, str]], pg_url: str, aws: LocalAws
) -> None:
    keys, env = world
    rng = random.Random(20261213)
    loaded_before = []
    for _ in range(4):
        victim = import_worker.start(pg_url, aws.endpoint_url, BUCKET, env)
        try:
            wait_for(lambda: copying(pg_url), timeout=60, what="the worker's COPY")
            # Anywhere in the load: mid-COPY, at its commit, or between two files.
            time.sleep(rng.uniform(0.0, 1.2))
            victim.send_signal(signal.SIGKILL)
        finally:
            victim.communicate(timeout=30)
        # The killed worker's backend aborts once it sees the socket closed.
        wait_for(lambda: not copying(pg_url), timeout=30, what="the killed COPY to end")
        assert victim.returncode == -signal.SIGKILL
        with psycopg.connect(pg_url) as db:
            loaded_before.append(db.execute(f"SELECT count(*) FROM {LEDGER}").fetchone()[0])  # type: ignore[index]
    assert loaded_before[-1] < FILES  # every kill landed before the last file was in

    last = import_worker.start(pg_url, aws.endpoint_url, BUCKET, env)
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err[-4000:]
    run = json.loads(out)
    assert run["rejected"] == [] and run["already"] == []
    assert run["imported"] == sorted(keys)[loaded_before[-1] :]
    assert_each_file_once(pg_url, keys)


def test_two_workers_racing_on_one_connection_load_each_file_once(
    world: tuple[list[str], dict[str, str]], pg_url: str, aws: LocalAws
) -> None:
    keys, env = world
    workers = [import_worker.start(pg_url, aws.endpoint_url, BUCKET, env) for _ in range(2)]
    runs: list[dict[str, Any]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-4000:]
        runs.append(json.loads(out))
    first, second = (set(run["imported"]) for run in runs)
    assert not first & second and first | second == set(keys)
    assert sum(run["rows"] for run in runs) == FILES * ROWS
    # What one worker loaded, the other found done, or had not planned at all.
    for run, other in ((runs[0], second), (runs[1], first)):
        assert set(run["already"]) <= other
    assert_each_file_once(pg_url, keys)
