"""Schedules: at each tick, dispatch every connection that may transfer and whose UTC-aligned
slot has come and was not yet dispatched. Slots are claimed with compare-and-set in the state
store, so any number of schedulers (one per `byob serve`) dispatch each slot once.

The due connections are read in pages in ID order; a page's slots are claimed in one
statement, then the page is dispatched: to the distributed queue in one batch (which queues
all of it or none), else one connection at a time. A dispatch that fails gives its slots back —
a queue that is briefly unreachable must not cost a daily connection its day."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from byob.domain.connections import Connection
from byob.domain.schedules import SlotClaim, due
from byob.errors import ByobError
from byob.services.ports import Adapters
from byob.services.transfers import TransferService

# A window fixed this long ago that never started has lost whatever was to run it.
STRANDED_AFTER = timedelta(minutes=10)
# Due connections read, claimed and queued together: 1,000 keeps each statement's parameters
# and a failed batch's cost (its slots wait for the next tick) small.
PAGE = 1000

log = logging.getLogger("byob.scheduler")

Dispatch = Callable[[Connection], object]


class ScheduleService:
    def __init__(self, adapters: Adapters, transfers: TransferService) -> None:
        self.adapters = adapters
        self.connections = adapters.state.connections
        self.transfers = transfers

    def dispatch_due(
        self, dispatch: Dispatch | None = None, *, now: datetime | None = None
    ) -> list[str]:
        """Dispatch what is due now, through ``dispatch`` one connection at a time if given,
        else to the transfer service's dispatcher; returns the connection names dispatched."""
        now = now or self.adapters.clock()
        in_batches = dispatch is None and self.transfers.dispatches_in_batches
        dispatched: list[str] = []
        after = ""
        while True:
            page = self.connections.schedulable(now, after=after, limit=PAGE)
            if not page:
                return dispatched
            after = page[-1].id
            claimed = self._claim(page, now)
            if in_batches:
                dispatched += self._dispatch_batch(claimed)
            else:
                dispatched += self._dispatch_each(
                    claimed, dispatch or self.transfers.dispatch_scheduled
                )
            if len(page) < PAGE:
                return dispatched

    def _claim(self, page: list[Connection], now: datetime) -> list[tuple[Connection, SlotClaim]]:
        """The page's connections whose slot is due, each with the claim this scheduler won."""
        wanted = []
        for conn in page:
            slot = due(conn.frequency_minutes, last_slot=conn.last_slot, now=now)
            if slot is not None and conn.may_transfer:
                wanted.append(
                    (conn, SlotClaim(connection_id=conn.id, previous=conn.last_slot, slot=slot))
                )
        won = self.connections.claim_slots(claim for _, claim in wanted)
        # Any others: another scheduler claimed them first.
        return [(conn, claim) for conn, claim in wanted if conn.id in won]

    def _dispatch_batch(self, claimed: list[tuple[Connection, SlotClaim]]) -> list[str]:
        if not claimed:
            return []
        try:
            self.transfers.dispatch_scheduled_many([conn for conn, _ in claimed])
        except Exception as exc:
            self.connections.release_slots(claim for _, claim in claimed)
            self._failed(f"{len(claimed)} connections", exc)
            return []
        return [conn.name for conn, _ in claimed]

    def _dispatch_each(
        self, claimed: list[tuple[Connection, SlotClaim]], dispatch: Dispatch
    ) -> list[str]:
        dispatched = []
        for conn, claim in claimed:
            try:
                dispatch(conn)
                dispatched.append(conn.name)
            except Exception as exc:
                self.connections.release_slots([claim])
                self._failed(conn.name, exc)
        return dispatched

    @staticmethod
    def _failed(what: str, exc: Exception) -> None:
        if isinstance(exc, ByobError):
            log.warning("scheduling %s failed: %s", what, exc.message)
        else:
            log.exception("scheduling %s failed", what)

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
