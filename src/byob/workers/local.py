"""The embedded default's workers: a small thread pool in the serving process, with one lock
per connection and model so the same model of a connection never runs twice at once. Each
transfer takes the one path (`TransferService.run_model`); failures worth it are retried here
with backoff and jitter. The scheduler's page of due connections (`trigger_many`) runs each
model for all of them from one scan of its table (`TransferService.run_fanned`); a connection
whose part fails in a way worth retrying retries alone, and a shared run that fails as a whole
runs each of its connections alone."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from byob import logs
from byob.domain.connections import Connection
from byob.domain.failures import backoff
from byob.domain.transfers import TransferRecord
from byob.errors import NotFoundError
from byob.services import Services
from byob.services.transfers import TransfersHeld, Triggered, should_retry

log = logging.getLogger("byob.workers")


class LocalWorkers:
    def __init__(
        self,
        services: Services,
        *,
        threads: int = 2,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.services = services
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="byob-worker")
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.futures: list[Future[None]] = []

    def trigger(self, conn: Connection, models: list[str], *, full_refresh: bool) -> Triggered:
        """Fix the windows now (so the caller gets transfer IDs), run them in the background."""
        planned: list[TransferRecord] = []
        busy: list[str] = []
        for model in models:
            key = (conn.id, model)
            if not self._claim(key):
                busy.append(model)
                continue
            try:
                records = self.services.transfers.plan(conn, model, full_refresh=full_refresh)
            except BaseException:
                self._release(key)
                raise
            planned += records
            first = records[0].id if records else ""
            self.futures.append(self._pool.submit(self._run, conn, model, first, key))
        return Triggered(planned=planned, busy=busy)

    def trigger_many(self, runs: list[tuple[Connection, list[str]]]) -> list[Triggered]:
        """Scheduled runs of many connections: per model, the export connections due share
        one scan (up to the fan-out size at a time), their windows fixed when it starts; an
        import connection, or a model only one connection is due for, runs as `trigger`
        runs it."""
        due_for = Counter(m for conn, models in runs if not conn.is_import for m in models)
        triggered: list[Triggered] = []
        shared: dict[str, list[tuple[Connection, tuple[str, str]]]] = {}
        for conn, models in runs:
            alone = [m for m in models if conn.is_import or due_for[m] == 1]
            started = (
                self.trigger(conn, alone, full_refresh=False)
                if alone
                else Triggered(planned=[], busy=[])
            )
            busy, queued = list(started.busy), []
            for model in models:
                if model in alone:
                    continue
                key = (conn.id, model)
                if not self._claim(key):
                    busy.append(model)
                    continue
                shared.setdefault(model, []).append((conn, key))
                queued.append(model)
            triggered.append(Triggered(planned=started.planned, busy=busy, queued=queued))
        size = self.services.adapters.settings.fan_out_connections
        for model, members in shared.items():
            for start in range(0, len(members), size):
                group = members[start : start + size]
                self.futures.append(self._pool.submit(self._run_fanned, model, group))
        return triggered

    def _run_fanned(self, model: str, group: list[tuple[Connection, tuple[str, str]]]) -> None:
        try:
            outcomes = self.services.transfers.run_fanned(
                model, [conn for conn, _ in group], max_attempts=self.max_attempts
            )
        except Exception:
            # No member's outcome came back, and the scheduler has already marked their slot
            # dispatched: dropped here, every one of them would wait a whole period. Alone,
            # each runs (retries, tells its failure) as `trigger` runs it; a window the shared
            # run may have fixed is picked up there, and a committed one is not sent again.
            log.exception("the shared run of model %s failed; its connections run alone", model)
            for conn, key in group:
                self._run(conn, model, "", key)  # releases its key
            return
        keys = {conn.id: key for conn, key in group}
        for conn, outcome in outcomes:
            key = keys.pop(conn.id)
            if isinstance(outcome, TransfersHeld):
                log.info("transfer of %s/%s not run: %s", conn.name, model, outcome.message)
            elif isinstance(outcome, Exception) and should_retry(
                outcome, attempt=1, max_attempts=self.max_attempts
            ):
                self.sleep(backoff(1))
                self._run(conn, model, "", key, first_attempt=2)  # releases its key
                continue
            self._release(key)
        for key in keys.values():  # a member the shared run returned no outcome for
            self._release(key)

    def _run(
        self,
        conn: Connection,
        model: str,
        first: str,
        key: tuple[str, str],
        *,
        first_attempt: int = 1,
    ) -> None:
        token = logs.context.set({"connection": conn.name, "model": model, "transfer": first})
        try:
            for attempt in range(first_attempt, self.max_attempts + 1):
                try:
                    self.services.transfers.run_model(
                        conn.id, model, attempt=attempt, max_attempts=self.max_attempts
                    )
                    return
                # Held, or deleted while it waited (no retry would find it): nothing to tell.
                except (TransfersHeld, NotFoundError) as exc:
                    log.info("transfer of %s/%s not run: %s", conn.name, model, exc.message)
                    return
                except Exception as exc:
                    if not should_retry(exc, attempt=attempt, max_attempts=self.max_attempts):
                        return  # told by the service: webhook, failing connection, history
                    self.sleep(backoff(attempt))
        finally:
            logs.context.reset(token)
            self._release(key)

    def queue_depth(self) -> tuple[int, float]:
        """Models running or waiting here (the embedded queue has no waiting age)."""
        with self._lock:
            return len(self._busy), 0.0

    def _claim(self, key: tuple[str, str]) -> bool:
        """Take the lock of a connection's model; False when it is running or waiting."""
        with self._lock:
            if key in self._busy:
                return False
            self._busy.add(key)
            return True

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._busy.discard(key)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
