"""Production workers: transfers as Procrastinate jobs in the PostgreSQL state store.

Each job moves one model of one connection. Procrastinate's `lock` keeps two runs of the same
connection and model from overlapping; its `queueing_lock` keeps at most one waiting. A worker
killed mid-transfer leaves its job "doing" with a stale heartbeat; the periodic
`retry_stalled_jobs` task puts it back in the queue, and the retry finishes the transfer's
persisted window exactly once (see engine/transfer.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from byob.domain.connections import Connection, Status
from byob.errors import ByobError
from byob.workers.failures import Verdict, backoff, classify
from byob.workers.local import Triggered

if TYPE_CHECKING:
    from byob.app import Byob

log = logging.getLogger("byob.queue")

QUEUE = "byob-transfers"
MAINTENANCE_QUEUE = "byob-maintenance"
MAX_ATTEMPTS = 6
# Workers beat every 2 s; one silent for this long is gone (killed, machine lost).
STALLED_AFTER = 15.0
_worker_app: dict[str, Byob] = {}  # the Byob app of this worker process (set by run_worker)


class TransientTransferError(Exception):
    """A failure worth retrying later (throttling, timeouts, a database restart)."""


class JitteredRetry(BaseRetryStrategy):
    """Exponential backoff with full jitter, only for transient failures."""

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
        if not isinstance(exception, TransientTransferError) or job.attempts + 1 >= MAX_ATTEMPTS:
            return None
        return RetryDecision(retry_in={"seconds": backoff(job.attempts + 1)})


def lock_of(connection_id: str, model: str) -> str:
    return f"byob:{connection_id}:{model}"


TRANSFER_TASK = "byob.transfer"


def transfer(connection_id: str, model: str, full_refresh: bool = False) -> dict[str, Any]:
    byob = _worker_app["byob"]
    conn = byob.connections.get(connection_id)
    if conn.status is not Status.ACTIVE or conn.failing_check:
        return {
            "skipped": f"connection is {conn.status}"
            + (" and failing" if conn.failing_check else "")
        }
    spec = byob.config.model(model)
    try:
        with byob.source() as src:
            runner = byob.runner(conn, src)
            resolved, records = runner.prepare(spec, full_refresh=full_refresh)
            done = [runner.execute(resolved, record).record for record in records]
    except Exception as exc:
        verdict = classify(exc)
        message = exc.message if isinstance(exc, ByobError) else repr(exc)
        byob.emit(
            "transfer.failed",
            {
                "connection": conn.name,
                "tenant": conn.tenant,
                "model": model,
                "error": message,
                "verdict": verdict.value,
            },
        )
        if verdict is Verdict.CONNECTION_FAILING:
            byob.mark_failing(conn.id, check="transfer", message=message)
            return {"failing": message}
        if verdict is Verdict.RETRY:
            raise TransientTransferError(message) from exc
        raise
    for record in done:
        byob.emit(
            "transfer." + record.status,
            {"connection": conn.name, "tenant": conn.tenant, "transfer": record.as_dict()},
        )
    return {"transfers": [r.id for r in done], "rows": sum(r.rows for r in done)}


async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> int:
    """Requeue jobs whose worker stopped sending heartbeats (killed, machine lost)."""
    manager = context.app.job_manager
    stalled = list(
        await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_AFTER)
    )
    for job in stalled:
        log.warning("retrying stalled job %s (%s)", job.id, job.task_kwargs)
        await manager.retry_job(job)
    return len(stalled)


def make_queue(database_url: str) -> procrastinate.App:
    """A Procrastinate app on the state store's PostgreSQL database."""
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    # Registered per App (not on a shared Blueprint, which namespacing would mutate).
    app.task(name=TRANSFER_TASK, queue=QUEUE, retry=JitteredRetry())(transfer)
    stalled = app.task(
        name="byob.retry_stalled_jobs",
        queue=MAINTENANCE_QUEUE,
        queueing_lock="byob-retry-stalled",
        pass_context=True,
    )(retry_stalled_jobs)
    app.periodic(cron="* * * * *")(stalled)
    return app


def ensure_schema(queue: procrastinate.App) -> None:
    """Apply Procrastinate's schema once (idempotent)."""
    with queue.open():
        connector = queue.connector.get_sync_connector()
        present = connector.execute_query_one(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if not present["present"]:
            queue.schema_manager.apply_schema()


def defer_transfer(
    queue: procrastinate.App, conn: Connection, model: str, *, full_refresh: bool = False
) -> bool:
    """Queue one model of one connection; False when one is already waiting."""
    task = queue.tasks[TRANSFER_TASK]
    lock = lock_of(conn.id, model)
    try:
        task.configure(lock=lock, queueing_lock=lock).defer(
            connection_id=conn.id, model=model, full_refresh=full_refresh
        )
    except AlreadyEnqueued:
        return False
    return True


def queue_depth(queue: procrastinate.App) -> tuple[int, float]:
    """Jobs waiting, and the age in seconds of the oldest one."""
    connector = queue.connector.get_sync_connector()
    row = connector.execute_query_one(
        "SELECT count(*) AS n, min(scheduled_at) AS oldest_scheduled, "
        "min(id) AS oldest_id FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = %(q)s",
        q=QUEUE,
    )
    oldest = 0.0
    if row["n"]:
        first = connector.execute_query_one(
            "SELECT min(at) AS at FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
            "WHERE j.status = 'todo' AND j.queue_name = %(q)s AND e.type = 'deferred'",
            q=QUEUE,
        )
        if first["at"] is not None:
            oldest = (datetime.now(UTC) - first["at"]).total_seconds()
    return int(row["n"]), oldest


def run_worker(
    byob: Byob, queue: procrastinate.App, *, concurrency: int, name: str | None = None
) -> None:
    """Take transfers until SIGTERM/SIGINT; a first signal drains running jobs gracefully."""
    _worker_app["byob"] = byob
    byob.concurrent_transfers = concurrency
    queue.run_worker(
        queues=[QUEUE, MAINTENANCE_QUEUE],
        concurrency=concurrency,
        name=name,
        install_signal_handlers=True,
        update_heartbeat_interval=2.0,
        stalled_worker_timeout=10.0,
        delete_jobs="successful",
        shutdown_graceful_timeout=timedelta(minutes=30).total_seconds(),
    )


class QueueDispatcher:
    """Triggers for distributed workers: each model becomes a job in the queue."""

    def __init__(self, byob: Byob, queue: procrastinate.App) -> None:
        self.byob = byob
        self.queue = queue
        queue.open()

    def trigger(
        self, name: str, *, model: str | None = None, full_refresh: bool = False
    ) -> Triggered:
        conn = self.byob.active_connection(name)
        specs = [self.byob.config.model(model)] if model else list(self.byob.config.models)
        queued: list[str] = []
        busy: list[str] = []
        for spec in specs:
            (
                queued
                if defer_transfer(self.queue, conn, spec.name, full_refresh=full_refresh)
                else busy
            ).append(spec.name)
        return Triggered(planned=[], busy=busy, queued=queued)

    def shutdown(self, *, wait: bool = True) -> None:
        self.queue.close()
