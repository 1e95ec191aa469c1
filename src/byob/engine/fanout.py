"""One scan of a model's table feeding several connections' transfers (a *fan-out*).

Daily connections all fall due at midnight, so "every tenant at once" is the common case; a
scan per tenant pays for the table's pages again for each of them. Here the members' windows
are planned together (one source clock, so they end together), the table is read once for all
of them (`Source.read_members`: each row tagged with the member it belongs to, every member's
own tenant and window in the join), and each batch is split by member on the Arrow side into
that member's own transfer: its own files, manifest and exactly-once record, exactly as
`TransferRunner.execute` would write them alone (the same `begin` / `deliver` / `complete`).

Memory: every member buffers its next row group; one budget covers them all, and when it is
passed the buffers move to local temporary files, where each row group is completed at its
full size (a destination that would hold multipart parts in memory for each open object is
spooled to local temporary files too).

Failures stay a member's own: a destination that refuses one member fails that member's
transfer and the others go on. A scan that fails (a value one member's rows cannot hold, the
source going away) is not pinned on every member: each is run again alone, where the failure
lands on the member it belongs to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from byob.destinations.spool import SpooledDestination
from byob.domain.connections import Connection
from byob.domain.models import ModelSpec, ResolvedModel, resolve
from byob.domain.transfers import TransferRecord
from byob.engine.arrow_types import arrow_schema, conform
from byob.engine.deletes import flag_deleted, tombstones
from byob.engine.hashing import hash_columns
from byob.engine.parquet_files import RollingParquetWriter
from byob.engine.read_ahead import read_ahead
from byob.engine.transfer import OpenTransfer, TransferResult, TransferRunner
from byob.errors import ByobError
from byob.sources.base import Source

log = logging.getLogger("byob.fanout")

_CANCEL_CHECK_SECONDS = 5.0
# Members finished at once after the scan (last row groups, uploads, manifests, commits): a
# fan-out's buffers are split this many ways (EngineOptions.shared_by), like transfers at once.
FINISHING_THREADS = 2


@dataclass(eq=False)
class Member:
    """One connection's part of a fan-out: its windows in order, and how they went."""

    runner: TransferRunner
    records: list[TransferRecord] = field(default_factory=list)
    results: list[TransferResult] = field(default_factory=list)
    error: ByobError | None = None  # the failure that stopped it; later windows wait
    failed_record: TransferRecord | None = None

    @property
    def conn(self) -> Connection:
        return self.runner.conn


class FanOut:
    """Runs one model for several connections reading ``source`` once per round of windows
    (their first windows, then their second ones, …: a connection with an interrupted window
    finishes it first, as alone). Build with the connections' runners, all on ``source``."""

    def __init__(
        self,
        *,
        source: Source,
        runners: list[TransferRunner],
        buffer_bytes: int,
        finishing_threads: int = FINISHING_THREADS,
    ) -> None:
        self.source = source
        self.buffer_bytes = buffer_bytes
        self.finishing_threads = max(finishing_threads, 1)
        for runner in runners:
            if runner.destination.buffers_in_memory:
                # Many objects open at once: on disk until each is committed.
                runner.destination = SpooledDestination(runner.destination)
        self.members = [Member(runner=r) for r in runners]

    def run(self, spec: ModelSpec, *, full_refresh: bool = False) -> list[Member]:
        """Plan every member's windows, then deliver them; a member that fails stops there
        (its ``error``), the others go on."""
        if not self.members:
            return []
        model = self._plan(spec, full_refresh=full_refresh)
        if model is None:
            return self.members
        depth = max((len(m.records) for m in self.members), default=0)
        for index in range(depth):
            ready = [
                (m, m.records[index])
                for m in self.members
                if m.error is None and index < len(m.records)
            ]
            if ready:
                self._round(model, ready)
        return self.members

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, spec: ModelSpec, *, full_refresh: bool) -> ResolvedModel | None:
        """The model resolved once against the source, and each member's windows planned on
        one source clock; a member whose planning fails (e.g. a column type its files can no
        longer take, a column it received in clear now hashed) fails alone."""
        model = resolve(spec, self.source.model_columns(spec))  # checked per member below
        now: datetime = self.source.now()
        for member in self.members:
            try:
                _, member.records = member.runner.prepare(
                    spec, full_refresh=full_refresh, source_now=now, model=model
                )
            except ByobError as exc:
                member.error = exc
        return model

    # -- one round ----------------------------------------------------------------------------

    def _round(self, model: ResolvedModel, ready: list[tuple[Member, TransferRecord]]) -> None:
        if len(ready) == 1:  # nothing to share: the plain path, with its read-ahead thread
            member, record = ready[0]
            self._execute(member, model, record)
            return
        started: list[tuple[Member, OpenTransfer]] = []
        for member, record in ready:
            opened = self._begin(member, model, record)
            if opened is not None:
                started.append((member, opened))
        if not started:
            return
        scanned = self._scan(model, started)
        if not scanned:
            return
        alive = [(m, o) for m, o in started if m.error is None and o.writer is not None]
        if model.spec.capture_deletes:
            for member, opened in alive:
                self._guarded(member, opened, lambda m=member, o=opened: self._tombstones(m, o))
        _share_encoding([o.writer for _, o in alive if o.writer is not None])
        # Counted here, on this thread: the members share one source connection.
        finishing = [
            (m, o, 0 if o.resumed else m.runner.held_back(model, o.record))
            for m, o in alive
            if m.error is None
        ]
        with ThreadPoolExecutor(
            max_workers=self.finishing_threads, thread_name_prefix="byob-fanout"
        ) as pool:
            # Finishing is each member's own: its last row group, uploads, manifest, commit.
            list(pool.map(lambda each: self._complete(*each), finishing))

    def _begin(
        self, member: Member, model: ResolvedModel, record: TransferRecord
    ) -> OpenTransfer | None:
        try:
            opened = member.runner.begin(model, record, resumed=record.attempts > 0)
        except ByobError as exc:
            self._failed(member, record, exc)
            return None
        if isinstance(opened, TransferResult):  # cancelled before it started
            member.results.append(opened)
            return None
        return opened

    def _alone(self, member: Member, model: ResolvedModel, opened: OpenTransfer) -> None:
        """A member run by itself after all (the round has no one to share with, or the shared
        scan failed): its started attempt is dropped, nothing of it visible, and the window
        run from the start the usual way."""
        if opened.writer is not None:
            opened.writer.abort()
            opened.writer = None
        self._execute(member, model, member.runner.transfers.get(opened.record.id))

    def _execute(self, member: Member, model: ResolvedModel, record: TransferRecord) -> None:
        try:
            member.results.append(member.runner.execute(model, record))
        except ByobError as exc:
            self._failed(member, record, exc)

    def _scan(self, model: ResolvedModel, started: list[tuple[Member, OpenTransfer]]) -> bool:
        """Read the members' windows once and hand each its rows. False when the scan itself
        failed: every member still standing was then run alone."""
        checked = time.monotonic()
        try:
            for pieces in self._read_ahead(model, started):
                for index, piece, nbytes in pieces:
                    member, opened = started[index]
                    if member.error is None:
                        self._guarded(
                            member,
                            opened,
                            lambda m=member, o=opened, p=piece, n=nbytes: m.runner.deliver(
                                o, p, nbytes=n
                            ),
                        )
                self._keep_within_budget(started)
                if time.monotonic() - checked > _CANCEL_CHECK_SECONDS:
                    checked = time.monotonic()
                    self._cancel_requested(started)
        except Exception as exc:
            message = exc.message if isinstance(exc, ByobError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "the shared read of model %s failed (%s); its %d connections run one by one",
                model.name,
                message,
                len(started),
            )
            for member, opened in started:
                if member.error is None and opened.writer is not None:
                    self._alone(member, model, opened)
            return False
        return True

    def _read_ahead(
        self, model: ResolvedModel, started: list[tuple[Member, OpenTransfer]]
    ) -> Iterator[list[Piece]]:
        """Read, cast and split by member on a second thread, so the scan overlaps encoding."""
        read_schema = arrow_schema(model)
        schema = started[0][1].schema
        hasher = started[0][0].runner.hasher  # one salt for every connection (the settings')
        windows = [(m.conn.tenant, o.record.window) for m, o in started]

        def pieces() -> Iterator[list[Piece]]:
            for raw, members in self.source.read_members(model, windows):
                batch = hash_columns(conform(raw, read_schema, model), model, hasher)
                yield _split(flag_deleted(batch, model, schema), members)

        depth = started[0][0].runner.options.read_ahead_batches
        return read_ahead(pieces, depth=depth, name=f"fanout-{model.name}")

    def _keep_within_budget(self, started: list[tuple[Member, OpenTransfer]]) -> None:
        """Past the budget, every member's buffer goes to disk: each keeps filling its row
        group there (small tenants' row groups would otherwise be cut small), and none keeps
        the scan's batches it holds slices of alive."""
        writers = [o.writer for m, o in started if m.error is None and o.writer is not None]
        if sum(w.pending_bytes for w in writers if w is not None) <= self.buffer_bytes:
            return
        for member, opened in started:
            if member.error is None and opened.writer is not None:
                self._guarded(member, opened, lambda w=opened.writer: w.spill())

    def _cancel_requested(self, started: list[tuple[Member, OpenTransfer]]) -> None:
        for member, opened in started:
            if _open(member, opened) and member.runner.transfers.cancel_requested(opened.record.id):
                self._guarded(
                    member,
                    opened,
                    lambda m=member, o=opened: m.results.append(m.runner.cancel_open(o)),
                )

    def _tombstones(self, member: Member, opened: OpenTransfer) -> None:
        model, runner = opened.model, member.runner
        for keys in self.source.read_deleted(model, member.conn.tenant, opened.record.window):
            flagged = tombstones(keys, model, opened.schema)
            runner.deliver(opened, hash_columns(flagged, model, runner.hasher))

    def _complete(self, member: Member, opened: OpenTransfer, held: int) -> None:
        try:
            member.results.append(member.runner.complete(opened, held=held))
        except ByobError as exc:
            self._failed(member, opened.record, exc)

    def _guarded(self, member: Member, opened: OpenTransfer, step: Any) -> None:
        """Run one member's step; a failure is that member's alone (recorded by its runner,
        its files removed), and it takes no further part."""
        try:
            step()
        except Exception as exc:
            try:
                member.runner.fail(opened, exc)
            except ByobError as failure:
                self._failed(member, opened.record, failure)

    @staticmethod
    def _failed(member: Member, record: TransferRecord, exc: ByobError) -> None:
        member.error = exc
        member.failed_record = record


def _share_encoding(writers: list[RollingParquetWriter]) -> None:
    """The first choice of column encoding made (by the member whose row group filled
    first, usually the largest), for every writer that has not chosen yet."""
    chosen = next((w.encoding for w in writers if w.encoding is not None), None)
    if chosen is not None:
        for writer in writers:
            writer.choose_encoding(chosen)


def _open(member: Member, opened: OpenTransfer) -> bool:
    return member.error is None and opened.writer is not None


# A member's share of one scanned batch: (member index, its rows, their Arrow bytes).
Piece = tuple[int, pa.RecordBatch, int]


def _split(batch: pa.RecordBatch, members: pa.Array) -> list[Piece]:
    """The batch's rows grouped by member (each group in scan order): one sort of the member
    indices and one take, then zero-copy slices. Each piece's bytes are its share of the
    grouped batch's, by rows: measuring a slice (``nbytes``) costs ~5 µs a column, 2.4 s of
    a 200-tenant fan-out's 5M rows, for a figure only the memory budget reads."""
    if batch.num_rows == 0:
        return []
    first, last = pc.min_max(members).values()
    if first == last:
        return [(first.as_py(), batch, batch.nbytes)]
    order = pc.sort_indices(members)
    grouped = batch.take(order)
    per_row = grouped.nbytes / grouped.num_rows
    counts = pc.value_counts(members.take(order))
    pieces, offset = [], 0
    for value, count in zip(
        counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
    ):
        pieces.append((value, grouped.slice(offset, count), round(per_row * count)))
        offset += count
    return pieces
