"""The scheduler: at each tick, dispatch every active, healthy connection whose UTC-aligned
slot has come and not yet been dispatched. Slots are claimed with compare-and-set in the state
store, so any number of schedulers (one per `byob serve`) dispatch each slot once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from byob.domain.connections import Connection
from byob.domain.schedules import due
from byob.errors import ByobError

if TYPE_CHECKING:
    from byob.app import Byob

log = logging.getLogger("byob.scheduler")

Dispatch = Callable[[Connection], None]


class Scheduler:
    def __init__(
        self, app: Byob, dispatch: Dispatch, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.app = app
        self.dispatch = dispatch
        self.clock = clock or app.clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[str]:
        """Dispatch what is due now; returns the connection names dispatched."""
        now = self.clock()
        dispatched = []
        for conn in self.app.connections.schedulable(now):
            slot = due(conn.frequency_minutes, last_slot=conn.last_slot, now=now)
            if slot is None or not self.app.connections.claim_slot(
                conn.id, previous=conn.last_slot, slot=slot
            ):
                continue  # not due, or another scheduler claimed it first
            try:
                self.dispatch(conn)
                dispatched.append(conn.name)
            except Exception as exc:
                # Give the slot back: a queue that is briefly unreachable must not cost a
                # daily connection its day.
                self.app.connections.release_slot(conn.id, slot=slot, previous=conn.last_slot)
                if isinstance(exc, ByobError):
                    log.warning("scheduling %s failed: %s", conn.name, exc.message)
                else:
                    log.exception("scheduling %s failed", conn.name)
        return dispatched

    def start(self, *, interval: float = 5.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:
                    log.exception("scheduler tick failed")

        self._thread = threading.Thread(target=loop, name="byob-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
