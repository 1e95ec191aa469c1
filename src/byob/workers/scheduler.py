"""The scheduler's thread: every few seconds, dispatch what is due (services/schedules.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from byob.domain.connections import Connection
from byob.services import Services
from byob.workers.outages import first_line, is_outage

log = logging.getLogger("byob.scheduler")


class Scheduler:
    def __init__(
        self,
        services: Services,
        dispatch: Callable[[Connection], object] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.services = services
        # None: the transfer service's dispatcher (the distributed queue takes pages at once).
        self.dispatch = dispatch
        self.clock = clock or services.now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[str]:
        """Dispatch what is due now, and windows stranded by a process that died; returns the
        connection names dispatched on schedule."""
        now = self.clock()
        dispatched = self.services.schedules.dispatch_due(self.dispatch, now=now)
        self.services.schedules.requeue_stranded(now=now)
        return dispatched

    def start(self, *, interval: float = 5.0) -> None:
        def loop() -> None:
            away = False  # the state store: one warning when it goes, one when it is back
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception as exc:
                    if not is_outage(exc):
                        log.exception("scheduler tick failed")
                    elif not away:
                        log.warning(
                            "state store out of reach (%s); retrying every %g s",
                            first_line(exc),
                            interval,
                        )
                    away = away or is_outage(exc)
                    continue
                if away:
                    log.warning("state store reachable again; scheduling resumed")
                    away = False

        self._thread = threading.Thread(target=loop, name="byob-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
