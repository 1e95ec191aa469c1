"""The embedded default's workers: a small thread pool in the serving process, with one lock
per connection and model so the same model of a connection never runs twice at once."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from byob.domain.models import ResolvedModel
from byob.errors import ByobError
from byob.store.repositories import TransferRecord

if TYPE_CHECKING:
    from byob.app import Byob

log = logging.getLogger("byob.workers")


@dataclass(frozen=True, kw_only=True)
class Triggered:
    planned: list[TransferRecord]
    busy: list[str]  # models skipped because a transfer of them is already running


class LocalWorkers:
    def __init__(self, app: Byob, *, threads: int = 2) -> None:
        self.app = app
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="byob-worker")
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.futures: list[Future[None]] = []

    def trigger(self, name: str, *, model: str | None = None, full_refresh: bool = False) -> Triggered:
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
        try:
            conn = self.app.connections.get(name)
            with self.app.source() as src:
                runner = self.app.runner(conn, src)
                for record in records:  # in order; the first failure stops the rest
                    runner.execute(model, record)
        except ByobError as exc:
            log.warning("transfer of %s/%s failed: %s", name, model.name, exc.message)
        except Exception:
            log.exception("transfer of %s/%s failed", name, model.name)
        finally:
            self._release(key)

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._busy.discard(key)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
