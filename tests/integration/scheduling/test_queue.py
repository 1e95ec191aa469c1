"""The production queue (Procrastinate on the PostgreSQL state store): at most one waiting job
per connection and model, even when deferred from many threads at once; `byob worker`
processes run the jobs and the rows land in S3; SIGTERM drains the running job, then exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest

from byob.demo.emulator import CustomerAccount, LocalAws
from byob.demo.readback import connect_s3
from byob.services import Services
from byob.workers import queue as q
from tests.integration.scheduling.helpers import MODEL, acme_ids, create_invoices, wait_for
from tests.support import (
    TEST_SECRET_KEY,
    TEST_SIGNING_KEY,
    holds_for,
    make_services,
    onboard_s3,
    write_config,
)

pytestmark = pytest.mark.integration

BYOB = [sys.executable, "-m", "byob.cli"]
REFUNDS = {
    "name": "refunds",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


@dataclass
class Setup:
    app: Services
    conn: Any
    customer: CustomerAccount
    jobs: procrastinate.App
    env: dict[str, str]
    state_url: str
    source_url: str
    tmp_path: Path


@pytest.fixture
def setup(tmp_path: Path, pg_url: str, state_pg_url: str, aws: LocalAws) -> Iterator[Setup]:
    create_invoices(pg_url)
    config = write_config(tmp_path / "byob.toml", pg_url, [MODEL, REFUNDS])
    app = make_services(tmp_path, config, aws, database_url=state_pg_url)
    conn, customer = onboard_s3(app, aws)
    jobs = q.make_queue(state_pg_url)
    q.ensure_schema(jobs, app.adapters.state)
    q.ensure_schema(jobs, app.adapters.state)  # idempotent
    env = dict(os.environ) | {
        "BYOB_DATABASE_URL": state_pg_url,
        "BYOB_SECRET_KEY": TEST_SECRET_KEY,
        "BYOB_SIGNING_KEY": TEST_SIGNING_KEY,
        "BYOB_CONFIG": str(config),
        "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        "BYOB_SETTLE_LAG_SECONDS": "0",
        "BYOB_HOME": str(tmp_path / ".byob"),  # the same secret key file as `app`
    }
    with jobs.open():
        yield Setup(
            app=app,
            conn=conn,
            customer=customer,
            jobs=jobs,
            env=env,
            state_url=state_pg_url,
            source_url=pg_url,
            tmp_path=tmp_path,
        )
    app.adapters.close()


def test_make_queue_twice_keeps_the_task_names() -> None:
    """A process may build the queue more than once (the API, the worker, tests): each app
    keeps the task names the jobs in the database carry. (Regression: the tasks were once
    namespaced in place on a shared blueprint, so a second app renamed them all and every job
    failed with TaskNotFound.)"""
    first = q.make_queue("postgresql://byob@127.0.0.1:1/unused")
    second = q.make_queue("postgresql://byob@127.0.0.1:1/unused")
    for jobs in (first, second):
        assert jobs.tasks[q.TRANSFER_TASK].name == q.TRANSFER_TASK, sorted(jobs.tasks)


def _jobs(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as db, db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT id, status, queueing_lock, lock, args FROM procrastinate_jobs "
            "WHERE queue_name = %s ORDER BY id",
            (q.QUEUE,),
        )
        return list(cur.fetchall())


def _delivered_ids(s: Setup, model: str = "invoices") -> list[int]:
    con = connect_s3(s.customer.client("s3").meta.endpoint_url, **s.customer.credentials())
    rows = con.execute(
        f"SELECT id FROM read_parquet('s3://bkt/exports/{model}/*/*.parquet')"
    ).fetchall()
    return sorted(r[0] for r in rows)


def _worker_failed(s: Setup, log: Path) -> None:
    """Fail at once (not after a timeout) when the worker could not run a job."""
    failed = [j for j in _jobs(s.state_url) if j["status"] == "failed"]
    if failed:
        raise AssertionError(f"jobs failed: {failed}\n{log.read_text()[-4000:]}")


def _start_worker(s: Setup, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*BYOB, "worker", "--concurrency", "2", "--name", "w1"],
            env=s.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def test_a_second_deferral_while_one_waits_is_refused(setup: Setup) -> None:
    s = setup
    assert q.defer_transfer(s.jobs, s.conn, "invoices") is True
    assert q.defer_transfer(s.jobs, s.conn, "invoices") is False
    assert q.defer_transfer(s.jobs, s.conn, "invoices", full_refresh=True) is False
    assert q.defer_transfer(s.jobs, s.conn, "refunds") is True  # another model: its own lock
    waiting = _jobs(s.state_url)
    assert [(j["status"], j["queueing_lock"]) for j in waiting] == [
        ("todo", q.lock_of(s.conn.id, "invoices")),
        ("todo", q.lock_of(s.conn.id, "refunds")),
    ]
    assert all(j["lock"] == j["queueing_lock"] for j in waiting)
    # The dispatcher the scheduler uses says which models were queued and which were busy.
    dispatcher = q.QueueDispatcher(s.app, s.jobs)
    depth, oldest = dispatcher.queue_depth()
    assert depth == 2 and 0 <= oldest < 60
    done = dispatcher.trigger(s.conn, ["invoices", "refunds"], full_refresh=False)
    assert done.queued == [] and done.busy == ["invoices", "refunds"] and done.planned == []


def test_eight_threads_deferring_at_once_queue_exactly_one_job(setup: Setup) -> None:
    s = setup
    start = threading.Barrier(8, timeout=30)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def defer() -> None:
        try:
            start.wait()
            ok = q.defer_transfer(s.jobs, s.conn, "invoices")
            with lock:
                results.append(ok)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=defer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(results) == [False] * 7 + [True]
    assert len(_jobs(s.state_url)) == 1


def test_a_worker_process_runs_the_jobs_and_the_rows_land_in_s3(setup: Setup) -> None:
    s = setup
    assert q.defer_transfer(s.jobs, s.conn, "invoices") is True
    assert q.defer_transfer(s.jobs, s.conn, "refunds") is True
    worker = _start_worker(s, s.tmp_path / "worker.log")
    try:

        def finished() -> list[Any]:
            _worker_failed(s, s.tmp_path / "worker.log")
            records = s.app.adapters.state.transfers.history(s.conn.id)
            return (
                records
                if len(records) == 2 and all(r.status == "succeeded" for r in records)
                else []
            )

        records = wait_for(finished, timeout=90, what="both transfers to succeed")
        wait_for(lambda: _jobs(s.state_url) == [], timeout=30, what="the jobs to be deleted")
        assert s.app.adapters.state.queue_jobs.waiting(q.QUEUE, now=s.app.now()) == (0, 0.0)
        assert {r.model: r.rows for r in records} == {
            "invoices": len(acme_ids()),
            "refunds": len(acme_ids()),
        }
        assert _delivered_ids(s, "invoices") == acme_ids()
        assert _delivered_ids(s, "refunds") == acme_ids()
        # A job deferred again once the first has run moves nothing twice.
        assert q.defer_transfer(s.jobs, s.conn, "invoices") is True
        wait_for(
            lambda: (
                len(s.app.adapters.state.transfers.history(s.conn.id)) == 3
                and _jobs(s.state_url) == []
            ),
            timeout=60,
            what="the incremental transfer",
        )
        latest = s.app.adapters.state.transfers.history(s.conn.id)[0]
        assert (latest.model, latest.status, latest.rows) == ("invoices", "succeeded", 0)
        assert _delivered_ids(s, "invoices") == acme_ids()

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (s.tmp_path / "worker.log").read_text()
    finally:
        _stop(worker)
    log = (s.tmp_path / "worker.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines, log


def test_sigterm_lets_the_running_job_finish_then_exits_cleanly(setup: Setup) -> None:
    """Also: while a model's job runs, a second job of it may wait but does not start (the
    per-connection-and-model lock), though the worker has a free slot; and a stopping worker
    takes no new job."""
    s = setup
    log_path = s.tmp_path / "worker.log"
    # The source table is locked: the transfer starts, then waits on its first read.
    blocker = psycopg.connect(s.source_url)
    try:
        blocker.execute("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE")
        assert q.defer_transfer(s.jobs, s.conn, "invoices") is True
        worker = _start_worker(s, log_path)
        try:

            def started() -> list[Any]:
                _worker_failed(s, log_path)
                return [
                    r
                    for r in s.app.adapters.state.transfers.history(s.conn.id)
                    if r.status == "running"
                ]

            running = wait_for(started, timeout=90, what="the transfer to start")
            assert [j["status"] for j in _jobs(s.state_url)] == ["doing"]
            # No longer waiting, so another may be queued; the lock keeps it from running.
            assert q.defer_transfer(s.jobs, s.conn, "invoices") is True
            assert q.defer_transfer(s.jobs, s.conn, "invoices") is False
            # The worker is notified of the new job at once; the lock must keep it waiting.
            holds_for(
                lambda: [j["status"] for j in _jobs(s.state_url)] == ["doing", "todo"],
                2.0,
                what="the second job waiting behind the lock",
            )
            worker.send_signal(signal.SIGTERM)
            wait_for(
                lambda: "Stop requested" in log_path.read_text(),
                timeout=30,
                what="the worker to see SIGTERM",
            )
            assert worker.poll() is None  # still draining the running job
            blocker.rollback()  # the read proceeds
            assert worker.wait(timeout=90) == 0, log_path.read_text()
        finally:
            _stop(worker)
    finally:
        blocker.close()
    record = s.app.transfers.get(running[0].id)
    assert (record.status, record.rows) == ("succeeded", len(acme_ids()))
    assert _delivered_ids(s) == acme_ids()
    # The running job finished (and was deleted); the waiting one was left for other workers.
    assert [j["status"] for j in _jobs(s.state_url)] == ["todo"]
    assert len(s.app.adapters.state.transfers.history(s.conn.id)) == 1
