"""Schedules: at each tick, dispatch every connection that may transfer and whose UTC-aligned
slot has come and was not yet dispatched. Slots are claimed with compare-and-set in the state
store, so any number of schedulers (one per `byob serve`) dispatch each slot once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from byob.domain.connections import Connection
from byob.domain.schedules import due
from byob.errors import ByobError
from byob.services.ports import Adapters
from byob.services.transfers import TransferService

# A window fixed this long ago that never started has lost whatever was to run it.
STRANDED_AFTER = timedelta(minutes=10)

log = logging.getLogger("byob.scheduler")

Dispatch = Callable[[Connection], object]


class ScheduleService:
    def __init__(self, adapters: Adapters, transfers: TransferService) -> None:
        self.adapters = adapters
        self.connections = adapters.state.connections
        self.transfers = transfers

    def dispatch_due(self, dispatch: Dispatch, *, now: datetime | None = None) -> list[str]:
        """Dispatch what is due now; returns the connection names dispatched."""
        now = now or self.adapters.clock()
        dispatched = []
        for conn in self.connections.schedulable(now):
            slot = due(conn.frequency_minutes, last_slot=conn.last_slot, now=now)
            if slot is None or not self.connections.claim_slot(
                conn.id, previous=conn.last_slot, slot=slot
            ):
                continue  # not due, or another scheduler claimed it first
            try:
                dispatch(conn)
                dispatched.append(conn.name)
            except Exception as exc:
                # Give the slot back: a queue that is briefly unreachable must not cost a
                # daily connection its day.
                self.connections.release_slot(conn.id, slot=slot, previous=conn.last_slot)
                if isinstance(exc, ByobError):
                    log.warning("scheduling %s failed: %s", conn.name, exc.message)
                else:
                    log.exception("scheduling %s failed", conn.name)
        return dispatched

    def requeue_stranded(self, *, now: datetime | None = None) -> list[str]:
        """Dispatch again the models whose planned windows never started (the process that
        fixed them died first), so no window waits for a trigger that is not coming. Returns
        the transfer IDs re-queued; a connection that may not transfer keeps its windows, and
        its next run after a validation takes them."""
        now = now or self.adapters.clock()
        requeued = []
        for record in self.adapters.state.transfers.stranded(planned_before=now - STRANDED_AFTER):
            conn = self.connections.get(record.connection_id)
            if not conn.may_transfer or self.transfers.dispatcher is None:
                continue
            try:
                triggered = self.transfers.dispatcher.trigger(
                    conn, [record.model], full_refresh=False
                )
            except ByobError as exc:
                log.warning("re-queueing transfer %s failed: %s", record.id, exc.message)
                continue
            if not triggered.busy:
                log.warning(
                    "transfer %s of %s/%s was planned at %s and never started; re-queued",
                    record.id,
                    conn.name,
                    record.model,
                    record.created_at.isoformat(),
                )
                requeued.append(record.id)
        return requeued
