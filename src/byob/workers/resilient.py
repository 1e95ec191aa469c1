"""Procrastinate's worker, kept alive while its PostgreSQL database restarts or is briefly out
of reach.

Procrastinate stops a worker when any of its side tasks fails (the LISTEN connection, the
heartbeat, the periodic deferrer) and lets a failed job fetch end it; a restart of the database
therefore stopped every worker, with exit status 0. Here each of those database calls waits
out an outage instead — retried with jittered backoff, logged once when the outage begins and
once when it ends — and only an outage longer than ``outage_limit`` stops the worker, as a
failure (`DatabaseGone`), so a supervisor restarts it.

Heartbeats stay honest: they keep beating while jobs run and resume as soon as the database
answers; a finished job's status is written as soon as the database answers (never dropped,
which would leave the job "doing" forever under a live heartbeat); and the stalled-job sweep
(`queue.retry_stalled_jobs`) gives workers time to beat after a database restart before it
calls any of them stalled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import procrastinate
from procrastinate.worker import Worker

from byob.errors import ByobError
from byob.workers.outages import first_line, is_outage

log = logging.getLogger("byob.worker")
T = TypeVar("T")

OUTAGE_LIMIT = 600.0  # seconds without the database before a worker gives up (exit 1)
_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0  # backoff between attempts while it is away
_GIVE_UP_GRACE = 10.0  # seconds running jobs get once the worker gives up


class DatabaseGone(ByobError):
    """The worker stopped without being asked to (its database stayed out of reach)."""

    code = "worker_stopped"


class ResilientWorker(Worker):
    def __init__(self, *args: Any, outage_limit: float = OUTAGE_LIMIT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage_limit = outage_limit
        self.failure: BaseException | None = None  # why it stopped, unless asked to
        self.signalled = False
        self._outage_since: float | None = None  # shared: one outage, one pair of log lines

    # -- waiting out outages ------------------------------------------------------------------

    async def _through_outages(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                result = await call()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._outage(what, exc)
                await asyncio.sleep(random.uniform(0, min(_RETRY_MAX, _RETRY_FIRST * 2**attempt)))
                attempt += 1
                continue
            if self._outage_since is not None:
                log.warning(
                    "database reachable again after %.1f s; %s resumed",
                    time.monotonic() - self._outage_since,
                    what,
                )
                self._outage_since = None
            return result

    def _outage(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning(
                "database out of reach (%s: %s); retrying for up to %.0f s",
                what,
                first_line(exc),
                self.outage_limit,
            )
        if now - self._outage_since > self.outage_limit:
            gone = DatabaseGone(
                f"the database stayed out of reach for over {self.outage_limit:.0f} s ({what})"
            )
            self._give_up(gone)
            raise gone from exc

    def _give_up(self, gone: DatabaseGone) -> None:
        """Stop now, as a failure. Running jobs get a short grace (they cannot record their
        end anyway; their stalled jobs are retried elsewhere, exactly once); should one hang,
        the process ends regardless a little later."""
        if self.failure is not None:
            return
        self.failure = gone
        log.error("%s: stopping (exit status 1) for a supervisor to restart the worker", gone)
        self.shutdown_graceful_timeout = _GIVE_UP_GRACE
        self.stop()  # type: ignore[no-untyped-call]
        watchdog = threading.Timer(_GIVE_UP_GRACE * 3, os._exit, args=(1,))
        watchdog.daemon = True
        watchdog.start()

    # -- the worker's database calls, each through outages ------------------------------------

    async def _fetch_and_process_jobs(self) -> None:
        # A failed fetch leaves no job taken and releases its slot: calling again is safe.
        await self._through_outages("fetching jobs", super()._fetch_and_process_jobs)

    async def _update_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.update_heartbeat_interval)
            await self._through_outages("heartbeat", self._beat)

    async def _beat(self) -> None:
        assert self.worker_id is not None
        await self.app.job_manager.update_heartbeat(self.worker_id)

    async def _persist_job_status(self, *args: Any, **kwargs: Any) -> None:
        await self._through_outages(
            "recording a job's end",
            lambda: super(ResilientWorker, self)._persist_job_status(*args, **kwargs),
        )

    async def _periodic_deferrer(self) -> None:
        await self._through_outages("periodic tasks", super()._periodic_deferrer)

    async def _listen(self) -> None:
        async def listen() -> None:
            await self.app.job_manager.listen_for_jobs(
                on_notification=self._handle_notification, queues=self.queues
            )

        while True:
            await self._through_outages("listening for jobs", listen)
            self._new_job_event.set()  # jobs deferred while it was away: poll now

    def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
        side_tasks = [
            asyncio.create_task(self._update_heartbeat(), name="update_heartbeats"),
            asyncio.create_task(self._periodic_deferrer(), name="deferrer"),
            asyncio.create_task(
                self._poll_jobs_to_abort(),  # type: ignore[no-untyped-call]  # recovers itself
                name="poll_jobs_to_abort",
            ),
        ]
        if self.listen_notify:
            side_tasks.append(asyncio.create_task(self._listen(), name="listener"))
        for task in side_tasks:
            task.add_done_callback(self._side_task_ended)
        return side_tasks

    def _side_task_ended(self, task: asyncio.Task[Any]) -> None:
        # Procrastinate's monitor stops the worker; remember why, so it exits as a failure.
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    # -- signals --------------------------------------------------------------------------------

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop gracefully (running jobs finish); a second one is the default
        action again (ends the process at once)."""
        loop = asyncio.get_running_loop()

        def stop() -> None:
            self.signalled = True
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self.stop()  # type: ignore[no-untyped-call]

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)


async def work(queue: procrastinate.App, *, outage_limit: float, **options: Any) -> None:
    """Run a worker until SIGTERM/SIGINT. Any other end — the database gone for longer than
    ``outage_limit``, a side task failing — raises, so the process exits non-zero."""
    worker = ResilientWorker(
        app=queue, install_signal_handlers=False, outage_limit=outage_limit, **options
    )
    worker.install_signals()
    async with queue.open_async():
        attempt = 0
        while True:
            try:
                await worker.run()  # type: ignore[no-untyped-call]
                break
            except Exception as exc:
                # Retried only while it could not start (register itself) for an outage.
                starting = worker.worker_id is None and not worker.signalled
                if not (starting and worker.failure is None and is_outage(exc)):
                    worker.failure = worker.failure or exc
                    break
                try:
                    worker._outage("starting", exc)
                except DatabaseGone as gone:
                    worker.failure = gone
                    break
                await asyncio.sleep(random.uniform(0, min(_RETRY_MAX, _RETRY_FIRST * 2**attempt)))
                attempt += 1
    if worker.signalled:
        if worker.failure is not None:  # e.g. could not unregister: the row is pruned later
            log.warning("stopped as asked, after: %s", worker.failure)
        return
    if isinstance(worker.failure, DatabaseGone):
        raise worker.failure
    raise DatabaseGone(
        f"the worker stopped without being asked to: {worker.failure!r}"
        if worker.failure is not None
        else "the worker stopped without being asked to"
    ) from worker.failure
