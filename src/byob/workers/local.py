"""The embedded default's workers: a small thread pool in the serving process, with one lock
per connection and model so the same model of a connection never runs twice at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from byob import logs
from byob.domain.models import ResolvedModel
from byob.errors import ByobError
from byob.store.repositories import TransferRecord
from byob.workers.failures import Verdict, backoff, classify

if TYPE_CHECKING:
    from byob.app import Byob

log = logging.getLogger("byob.workers")


@dataclass(frozen=True, kw_only=True)
class Triggered:
    planned: list[TransferRecord]  # windows fixed now (embedded workers)
    busy: list[str]  # models skipped because a transfer of them is already running or waiting
    queued: list[str] = field(default_factory=list)  # models queued for distributed workers


class LocalWorkers:
    def __init__(
        self,
        app: Byob,
        *,
        threads: int = 2,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.app = app
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="byob-worker")
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.futures: list[Future[None]] = []

    def trigger(
        self, name: str, *, model: str | None = None, full_refresh: bool = False
    ) -> Triggered:
        """Fix the windows now (so the caller gets transfer IDs), run them in the background."""
        conn = self.app.active_connection(name)
        specs = [self.app.config.model(model)] if model else list(self.app.config.models)
        planned: list[TransferRecord] = []
        busy: list[str] = []
        with self.app.source() as src:
            runner = self.app.runner(conn, src)
            for spec in specs:
                key = (conn.id, spec.name)
                with self._lock:
                    if key in self._busy:
                        busy.append(spec.name)
                        continue
                    self._busy.add(key)
                try:
                    resolved, records = runner.prepare(spec, full_refresh=full_refresh)
                except BaseException:
                    self._release(key)
                    raise
                planned += records
                self.futures.append(self._pool.submit(self._run, conn.name, resolved, records, key))
        return Triggered(planned=planned, busy=busy)

    def _run(
        self, name: str, model: ResolvedModel, records: list[TransferRecord], key: tuple[str, str]
    ) -> None:
        token = logs.context.set(
            {"connection": name, "model": model.name, "transfer": records[0].id if records else ""}
        )
        try:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    self._run_once(name, model, records)
                    return
                except Exception as exc:
                    verdict = classify(exc)
                    message = exc.message if isinstance(exc, ByobError) else repr(exc)
                    log.warning(
                        "transfer of %s/%s failed (attempt %d, %s): %s",
                        name,
                        model.name,
                        attempt,
                        verdict,
                        message,
                    )
                    final = verdict is not Verdict.RETRY or attempt == self.max_attempts
                    if final:
                        self.app.emit(
                            "transfer.failed",
                            {
                                "connection": name,
                                "model": model.name,
                                "error": message,
                                "verdict": verdict.value,
                            },
                        )
                    if verdict is Verdict.CONNECTION_FAILING:
                        self.app.mark_failing(name, check="transfer", message=message)
                        return
                    if verdict is Verdict.MODEL_FAILING or attempt == self.max_attempts:
                        return
                    self.sleep(backoff(attempt))
                    records = self.app.transfers.pending(records[0].connection_id, model.name)
        finally:
            logs.context.reset(token)
            self._release(key)

    def _run_once(self, name: str, model: ResolvedModel, records: list[TransferRecord]) -> None:
        conn = self.app.connections.get(name)
        with self.app.source() as src:
            runner = self.app.runner(conn, src)
            for record in records:  # in order; the first failure stops the rest
                done = runner.execute(model, record).record
                self.app.emit(
                    "transfer." + done.status,
                    {"connection": conn.name, "tenant": conn.tenant, "transfer": done.as_dict()},
                )

    def queue_depth(self) -> tuple[int, float]:
        """Models running or waiting here (the embedded queue has no waiting age)."""
        with self._lock:
            return len(self._busy), 0.0

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._busy.discard(key)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
