"""Schedules: at each tick, dispatch every connection that may transfer and whose UTC-aligned
slot has come and was not yet dispatched. Slots are claimed with compare-and-set in the state
store, so any number of schedulers (one per `byob serve`) dispatch each slot once.

The due connections are read in pages in ID order; a page's slots are claimed in one
statement, then the page is dispatched: to the distributed queue in one batch (which queues
all of it or none), else one connection at a time. A dispatch that fails gives its slots back —
a queue that is briefly unreachable must not cost a daily connection its day. Each claim is
recorded with it (`slot_claims`) and settled once its page is dispatched or given back: one
left unsettled (its scheduler stopped between claiming and queueing) is dispatched by the next
scheduler to look, a few minutes on, and a model already waiting in the queue is not queued
twice."""

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
# A slot claimed this long ago and never settled has lost its scheduler (a page is claimed and
# queued within a second or two).
UNSETTLED_AFTER = timedelta(minutes=5)
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
            claimed, records = self._claim(page, now)
            done, failed = self._dispatch([c for c, _ in claimed], dispatch, in_batches)
            # A failed dispatch gives its slots back: the next tick claims them afresh.
            self.connections.release_slots(claim for c, claim in claimed if c.id in failed)
            self.connections.settle_claims(records)
            dispatched += done
            if len(page) < PAGE:
                return dispatched

    def redispatch_unsettled(
        self, dispatch: Dispatch | None = None, *, now: datetime | None = None
    ) -> list[str]:
        """Dispatch the slots whose claim was never settled (the scheduler that claimed them
        stopped before queueing them, or before saying so); returns the connection names.
        A claim whose dispatch fails again stays, slots claimed, for the next look."""
        now = now or self.adapters.clock()
        in_batches = dispatch is None and self.transfers.dispatches_in_batches
        dispatched: list[str] = []
        for record, ids in self.connections.unsettled_claims(claimed_before=now - UNSETTLED_AFTER):
            conns = self.connections.many(ids)
            log.warning(
                "%d connections' schedule slots were claimed more than %s ago and never "
                "queued (their scheduler stopped); queueing them now: %s",
                len(conns),
                UNSETTLED_AFTER,
                ", ".join(c.name for c in conns[:20]) + (" …" if len(conns) > 20 else ""),
            )
            # Paused, failing or deleted since: nothing to queue.
            done, failed = self._dispatch(
                [c for c in conns if c.may_transfer], dispatch, in_batches
            )
            dispatched += done
            if not failed:
                self.connections.settle_claims([record])
        return dispatched

    def _claim(
        self, page: list[Connection], now: datetime
    ) -> tuple[list[tuple[Connection, SlotClaim]], list[str]]:
        """The page's connections whose slot is due, each with the claim this scheduler won,
        and the records of those claims (see ``Connections.claim_slots``)."""
        wanted = []
        for conn in page:
            slot = due(conn.frequency_minutes, last_slot=conn.last_slot, now=now)
            if slot is not None and conn.may_transfer:
                wanted.append(
                    (conn, SlotClaim(connection_id=conn.id, previous=conn.last_slot, slot=slot))
                )
        claimed = self.connections.claim_slots((claim for _, claim in wanted), now=now)
        # Any others: another scheduler claimed them first.
        return [(conn, claim) for conn, claim in wanted if conn.id in claimed.won], claimed.records

    def _dispatch(
        self, conns: list[Connection], dispatch: Dispatch | None, in_batches: bool
    ) -> tuple[list[str], set[str]]:
        """Queue scheduled runs of ``conns``: the names dispatched, and the IDs that failed
        (the whole page, for a batch the queue refused)."""
        if not conns:
            return [], set()
        if in_batches:
            try:
                self.transfers.dispatch_scheduled_many(conns)
            except Exception as exc:
                self._failed(f"{len(conns)} connections", exc)
                return [], {c.id for c in conns}
            return [c.name for c in conns], set()
        dispatched, failed = [], set()
        for conn in conns:
            try:
                (dispatch or self.transfers.dispatch_scheduled)(conn)
                dispatched.append(conn.name)
            except Exception as exc:
                failed.add(conn.id)
                self._failed(conn.name, exc)
        return dispatched, failed

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
