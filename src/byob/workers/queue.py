"""Production workers: transfers as Procrastinate jobs in the PostgreSQL state store.

Each job moves one model of one connection, through the one transfer path
(`TransferService.run_model`). Procrastinate's `lock` keeps two runs of the same connection
and model from overlapping; its `queueing_lock` keeps at most one waiting. A worker killed
mid-transfer leaves its job "doing" with a stale heartbeat; the periodic `retry_stalled_jobs`
task puts it back in the queue, and the retry finishes the transfer's persisted window exactly
once (see engine/transfer.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from byob.domain.connections import Connection
from byob.domain.failures import backoff
from byob.errors import ByobError
from byob.services import Services
from byob.services.transfers import TransfersHeld, Triggered, should_retry
from byob.store.state import StateStore
from byob.workers.resilient import work

log = logging.getLogger("byob.queue")

QUEUE = "byob-transfers"
MAINTENANCE_QUEUE = "byob-maintenance"
# Workers beat every 2 s; one silent for this long is gone (killed, machine lost).
MAX_ATTEMPTS = 6  # the default of BYOB_TRANSFER_MAX_ATTEMPTS
STALLED_AFTER = 15.0
HEARTBEAT_SECONDS = 2.0
TRANSFER_TASK = "byob.transfer"
_worker: dict[str, Services] = {}  # the use cases of this worker process (set by run_worker)


class TransientTransferError(Exception):
    """A failure worth retrying later (throttling, timeouts, a database restart)."""


class JitteredRetry(BaseRetryStrategy):
    """Exponential backoff with full jitter, only for transient failures."""

    def __init__(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.max_attempts = max_attempts

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
        if (
            not isinstance(exception, TransientTransferError)
            or job.attempts + 1 >= self.max_attempts
        ):
            return None
        return RetryDecision(
            retry_at=datetime.now(UTC) + timedelta(seconds=backoff(job.attempts + 1))
        )


def max_attempts() -> int:
    """Runs of one job before it fails for good, in this worker (BYOB_TRANSFER_MAX_ATTEMPTS)."""
    return _worker["services"].adapters.settings.transfer_max_attempts


def lock_of(connection_id: str, model: str) -> str:
    return f"byob:{connection_id}:{model}"


def transfer(
    context: procrastinate.JobContext, connection_id: str, model: str, full_refresh: bool = False
) -> dict[str, Any]:
    services = _worker["services"]
    attempt = (context.job.attempts if context.job else 0) + 1
    try:
        done = services.transfers.run_model(
            connection_id,
            model,
            full_refresh=full_refresh,
            attempt=attempt,
            max_attempts=max_attempts(),
        )
    except TransfersHeld as exc:
        return {"skipped": exc.message}
    except Exception as exc:
        if should_retry(exc, attempt=attempt, max_attempts=max_attempts()):
            message = exc.message if isinstance(exc, ByobError) else repr(exc)
            raise TransientTransferError(message) from exc
        raise  # told by the service; the job ends failed, without a retry
    return {"transfers": [r.record.id for r in done], "rows": sum(r.record.rows for r in done)}


async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> int:
    """Requeue jobs whose worker stopped sending heartbeats (killed, machine lost). Right
    after the database restarts every heartbeat is old: the workers that are alive get time
    to beat again before any of them is called stalled."""
    up = await context.app.connector.execute_query_one_async(
        "SELECT extract(epoch FROM now() - pg_postmaster_start_time())::float AS seconds"
    )
    if up["seconds"] < STALLED_AFTER + 2 * HEARTBEAT_SECONDS:
        return 0
    manager = context.app.job_manager
    stalled = list(
        await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_AFTER)
    )
    for job in stalled:
        log.warning("retrying stalled job %s (%s)", job.id, job.task_kwargs)
        await manager.retry_job(job)
    return len(stalled)


def make_queue(database_url: str, *, max_attempts: int = MAX_ATTEMPTS) -> procrastinate.App:
    """A Procrastinate app on the state store's PostgreSQL database; a transfer job runs at
    most ``max_attempts`` times."""
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    # A pooled connection is waited for 5 s, not psycopg_pool's 30: while the database is
    # away a worker notices within seconds and waits it out (workers/resilient.py).
    queue = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo, timeout=5.0)
    )
    # Registered per App (not on a shared Blueprint, which namespacing would mutate).
    queue.task(
        name=TRANSFER_TASK, queue=QUEUE, retry=JitteredRetry(max_attempts), pass_context=True
    )(transfer)
    stalled = queue.task(
        name="byob.retry_stalled_jobs",
        queue=MAINTENANCE_QUEUE,
        queueing_lock="byob-retry-stalled",
        pass_context=True,
    )(retry_stalled_jobs)
    # Every 15 s (croniter takes seconds as a sixth field): a killed worker's job waits at most
    # STALLED_AFTER plus 15 s before another worker finishes it.
    queue.periodic(cron="* * * * * */15")(stalled)
    return queue


def ensure_schema(queue: procrastinate.App, state: StateStore) -> None:
    """Apply Procrastinate's schema once (idempotent, and one process at a time)."""
    if state.queue_jobs.schema_present():
        return
    with state.queue_jobs.schema_lock():
        if state.queue_jobs.schema_present():
            return
        with queue.open():
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


def run_worker(
    services: Services, queue: procrastinate.App, *, concurrency: int, name: str | None = None
) -> None:
    """Take transfers until SIGTERM/SIGINT; a first signal drains running jobs gracefully.
    Outlives database restarts; raises (exit status 1) when it stops for any other reason."""
    _worker["services"] = services
    services.adapters.concurrent_transfers = concurrency
    asyncio.run(
        work(
            queue,
            outage_limit=services.adapters.settings.worker_outage_seconds,
            queues=[QUEUE, MAINTENANCE_QUEUE],
            concurrency=concurrency,
            name=name,
            update_heartbeat_interval=HEARTBEAT_SECONDS,
            stalled_worker_timeout=10.0,
            delete_jobs="successful",
            shutdown_graceful_timeout=timedelta(minutes=30).total_seconds(),
        )
    )


def defer_transfers(
    queue: procrastinate.App, state: StateStore, runs: list[tuple[Connection, list[str]]]
) -> list[Triggered]:
    """Queue many connections' models in one round trip (plus one to see which are waiting
    already); a model already waiting is not queued twice. Raises if the queue refuses the
    batch, which then queued nothing."""
    waiting = state.queue_jobs.queued_locks(
        [lock_of(conn.id, model) for conn, models in runs for model in models]
    )
    results: list[Triggered] = []
    jobs: list[tuple[str, dict[str, Any]]] = []
    for conn, models in runs:
        busy = [m for m in models if lock_of(conn.id, m) in waiting]
        queued = [m for m in models if lock_of(conn.id, m) not in waiting]
        results.append(Triggered(planned=[], busy=busy, queued=queued))
        jobs += [
            (lock_of(conn.id, m), {"connection_id": conn.id, "model": m, "full_refresh": False})
            for m in queued
        ]
    template = queue.tasks[TRANSFER_TASK].configure().job
    if jobs and not state.queue_jobs.defer(
        queue=template.queue, task=template.task_name, priority=template.priority, jobs=jobs
    ):
        # One was queued since we looked (a manual run): the batch went in whole or not at
        # all, so queue its models one by one, each told whether it was waiting already.
        return [one_by_one(queue, conn, models, full_refresh=False) for conn, models in runs]
    return results


def one_by_one(
    queue: procrastinate.App, conn: Connection, models: list[str], *, full_refresh: bool
) -> Triggered:
    """Queue each model of one connection; those waiting already are told busy."""
    queued: list[str] = []
    busy: list[str] = []
    for model in models:
        (queued if defer_transfer(queue, conn, model, full_refresh=full_refresh) else busy).append(
            model
        )
    return Triggered(planned=[], busy=busy, queued=queued)


class QueueDispatcher:
    """Triggers for distributed workers: each model becomes a job in the queue."""

    def __init__(self, services: Services, queue: procrastinate.App) -> None:
        self.services = services
        self.queue = queue
        queue.open()

    def trigger(self, conn: Connection, models: list[str], *, full_refresh: bool) -> Triggered:
        return one_by_one(self.queue, conn, models, full_refresh=full_refresh)

    def trigger_many(self, runs: list[tuple[Connection, list[str]]]) -> list[Triggered]:
        """Scheduled runs (no full refresh) of many connections, queued in one batch."""
        return defer_transfers(self.queue, self.services.adapters.state, runs)

    def queue_depth(self) -> tuple[int, float]:
        return self.services.adapters.state.queue_jobs.waiting(QUEUE, now=self.services.now())

    def shutdown(self, *, wait: bool = True) -> None:
        self.queue.close()
