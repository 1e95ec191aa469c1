"""The scheduler's thread: every few seconds, dispatch what is due (services/schedules.py);
once an hour, prune the captured deletes every connection has delivered."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from byob.domain.connections import Connection
from byob.errors import ByobError
from byob.services import Services
from byob.workers.outages import first_line, is_outage

log = logging.getLogger("byob.scheduler")

# Pruning reads every capturing model's tenants: hourly is soon enough for tombstones to go.
PRUNE_EVERY = timedelta(hours=1)


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
        self._pruned_at: datetime | None = None

    def tick(self) -> list[str]:
        """Dispatch what is due now, slots and windows stranded by a process that died;
        returns the connection names dispatched on schedule (late ones included)."""
        now = self.clock()
        dispatched = self.services.schedules.dispatch_due(self.dispatch, now=now)
        dispatched += self.services.schedules.redispatch_unsettled(self.dispatch, now=now)
        self.services.schedules.requeue_stranded(now=now)
        self._prune_deletes(now)
        return dispatched

    def _prune_deletes(self, now: datetime) -> None:
        """Drop the captured hard deletes every connection of their tenant has delivered (at
        most hourly; several schedulers pruning at once delete the same rows, harmlessly)."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            pruned = self.services.deletes.prune()
        except ByobError as exc:
            log.warning("pruning delivered deletes failed (retried in an hour): %s", exc.message)
            return
        if any(pruned.values()):
            log.info(
                "pruned delivered deletes: %s",
                ", ".join(f"{n} of {model}" for model, n in pruned.items() if n),
                extra={"fields": {"pruned": pruned}},
            )

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
