"""Running one model's transfer for one connection, exactly once.

How a retry stays exactly-once with only s3:PutObject (see README "Exactly once"):
1. The window and the start time (which names every file) are persisted before reading.
2. Each file's number is recorded as *started* before its first byte is sent, and *committed*
   after the object is complete; objects only become visible when complete (multipart or
   rename), so a file is either whole or absent.
3. A retry re-reads the same window and writes files 1..n under the same keys, replacing
   whatever the killed attempt left there; files numbered above n that an earlier attempt
   started are deleted, or, where the recipient has withdrawn s3:DeleteObject, replaced by
   empty Parquet files.
4. The manifest is written after every data file is durable; the high-water mark advances
   in the same state-store transaction that marks the transfer succeeded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import pyarrow as pa

from byob import logs
from byob.destinations.base import Destination, ObjectWriter
from byob.domain import layout
from byob.domain.connections import Connection
from byob.domain.manifests import delivered_columns, manifest, schema_document
from byob.domain.models import ModelSpec, NullCursor, ResolvedModel, resolve
from byob.domain.signing import Signer
from byob.domain.transfers import (
    FileRecord,
    FileState,
    ModelState,
    TransferProgress,
    TransferRecord,
    TransferStatus,
    held_back_note,
)
from byob.domain.types import ColumnType, Kind, check_evolution, check_hashing
from byob.domain.windows import TransferType, Window, plan_window
from byob.engine.arrow_types import arrow_schema, conform
from byob.engine.deletes import delivered_schema, flag_deleted, tombstones
from byob.engine.hashing import ColumnHasher, hash_columns, missing_salt
from byob.engine.parquet_files import RollingParquetWriter, WrittenFile, empty_parquet
from byob.engine.ports import Catalog, TransferLog
from byob.engine.read_ahead import read_ahead
from byob.errors import ByobError, DestinationError, NullCursorError, SourceError, TransferError
from byob.sources.base import Source

Clock = Callable[[], datetime]


Progress = Callable[[TransferProgress], None]  # after every batch, and once before the first


@dataclass(frozen=True)
class WithTotal:
    """A progress callback that also wants the window's size as its total. The size is a COUNT
    of the window, one more read of it (half a second on a million rows), so it is made for a
    person watching a terminal, not for a script's progress lines or a benchmark."""

    show: Progress

    def __call__(self, progress: TransferProgress) -> None:
        self.show(progress)


log = logging.getLogger("byob.transfer")

# Row groups smaller than this cost readers more than the memory they save.
_MIN_SHARED_ROW_GROUP_BYTES = 4 << 20
# S3 refuses multipart parts below 5 MiB (all but the last).
MIN_PART_BYTES = 5 << 20


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """How one transfer runs. Its buffers (the row group being filled, the batches read
    ahead, the multipart parts being filled and sent) are what a transfer's memory consists
    of beyond the process itself."""

    settle_lag: timedelta = timedelta(seconds=30)
    row_group_bytes: int = 16 << 20
    file_target_bytes: int = 256 << 20
    read_ahead_batches: int = 4  # bounded, so memory does not grow with the table
    part_bytes: int = 16 << 20  # multipart part size (S3 destinations)
    # A fan-out's members' row groups being filled, together (engine/fanout.py).
    fan_out_buffer_bytes: int = 64 << 20

    def shared_by(self, transfers: int) -> EngineOptions:
        """The options for each of ``transfers`` running at once in one process: they split
        the buffers of one, so the process's peak memory is set by its configuration, not by
        how many connections it serves at a time (down to row groups of 4 MiB, below which
        readers would pay for it, and to S3's smallest part)."""
        if transfers <= 1:
            return self
        floor = min(self.row_group_bytes, _MIN_SHARED_ROW_GROUP_BYTES)
        return replace(
            self,
            row_group_bytes=max(self.row_group_bytes // transfers, floor),
            read_ahead_batches=max(self.read_ahead_batches // transfers, 1),
            part_bytes=max(self.part_bytes // transfers, min(self.part_bytes, MIN_PART_BYTES)),
            fan_out_buffer_bytes=max(
                self.fan_out_buffer_bytes // transfers,
                min(self.fan_out_buffer_bytes, _MIN_SHARED_ROW_GROUP_BYTES),
            ),
        )


@dataclass(frozen=True, kw_only=True)
class TransferResult:
    record: TransferRecord
    resumed: bool
    warnings: tuple[str, ...] = ()
    held_back: int = 0  # rows newer than the window, left by the settle lag to the next one


@dataclass(kw_only=True, eq=False)
class OpenTransfer:
    """A transfer between `TransferRunner.begin` and `complete`: what its batches go into."""

    model: ResolvedModel
    record: TransferRecord
    resumed: bool
    previous: list[FileRecord]  # files earlier attempts recorded
    schema: pa.Schema = None  # set by begin
    writer: RollingParquetWriter | None = None
    excluded: int = 0  # rows left out for a NULL cursor
    delivered: int = 0
    report: Callable[[int], None] = lambda rows: None


class TransferRunner:
    """Moves one connection's rows of one model. Construct per connection."""

    def __init__(
        self,
        *,
        conn: Connection,
        source: Source,
        destination: Destination,
        transfers: TransferLog,
        options: EngineOptions,
        clock: Clock = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        catalog: Catalog | None = None,
        on_commit: Callable[[Any, TransferRecord], None] | None = None,
        signer: Signer | None = None,
        hash_salt: bytes | None = None,
    ) -> None:
        self.conn = conn
        self.source = source
        self.destination = destination
        self.transfers = transfers
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.catalog = catalog
        # Called inside the transaction that marks a transfer succeeded (TransferLog.commit).
        self.on_commit = on_commit
        # Signs each manifest (Ed25519 over its canonical JSON); None: manifests go unsigned.
        self.signer = signer
        # Keys the hashes of the models' hashed columns; None: a model that hashes is refused.
        self.hasher = ColumnHasher(hash_salt) if hash_salt else None

    # -- planning ----------------------------------------------------------------------------

    def resolve(self, spec: ModelSpec, state: ModelState | None = None) -> ResolvedModel:
        """Check the model against the source and against what was already delivered."""
        return self.check_delivered(resolve(spec, self.source.model_columns(spec)), state)

    def check_delivered(
        self, model: ResolvedModel, state: ModelState | None = None
    ) -> ResolvedModel:
        """The model, if this connection may receive it as it is now: its hashed columns have
        a salt, and every column it already received keeps a type readers can still read.
        ``state``: the model's state for this connection, when the caller has just read it."""
        if model.hashed_columns and self.hasher is None:
            raise missing_salt(model)
        if state is None:
            state = self.transfers.model_state(self.conn.id, model.name)
        delivered = state.columns or []
        current = {c.name: c for c in model.columns}
        for col in delivered:
            now = current.get(col["name"])
            if now is not None:
                check_evolution(col["name"], _column_type(col), now.type)
                check_hashing(col["name"], was=bool(col.get("hashed")), now=now.hashed)
        return model

    def run(
        self, spec: ModelSpec, *, full_refresh: bool = False, progress: Progress | None = None
    ) -> list[TransferResult]:
        """Finish an interrupted transfer of this model if there is one, then run a new one."""
        model, records = self.prepare(spec, full_refresh=full_refresh)
        return [self.execute(model, record, progress=progress) for record in records]

    def prepare(
        self,
        spec: ModelSpec,
        *,
        full_refresh: bool = False,
        source_now: datetime | None = None,
        model: ResolvedModel | None = None,
    ) -> tuple[ResolvedModel, list[TransferRecord]]:
        """Check the model and fix the windows to run: interrupted transfers first, oldest
        first (same windows, same file names), then a new one. Persisted before any row is
        read; the caller runs them in order and stops at the first failure. Connections
        planned together (a fan-out) pass one ``source_now``, so their windows end together,
        and the model resolved once."""
        # Read once: it both checks the model and places the new window.
        state = self.transfers.model_state(self.conn.id, spec.name)
        model = self.resolve(spec, state) if model is None else self.check_delivered(model, state)
        records = self.transfers.pending(self.conn.id, spec.name)
        if (
            records
            and records[-1].attempts == 0
            and not records[-1].cancel_requested
            and not full_refresh
        ):
            return model, records  # a planned window has not run yet: run it, don't pile up
        # Cancelled windows are delivered again by the new one: start after the last window
        # that will really be delivered.
        kept = [r for r in records if not r.cancel_requested]
        previous_high = kept[-1].window.high if kept else state.high_water_mark
        kind, window = plan_window(
            previous_high=previous_high,
            source_now=source_now or self.source.now(),
            settle_lag=self.options.settle_lag,
            full_refresh=full_refresh,
        )
        now = self._start_time(spec.name)
        planned = self.transfers.plan(
            connection_id=self.conn.id,
            model=spec.name,
            kind=kind,
            window=window,
            started_at=now,
            now=now,
        )
        records.append(planned)
        return model, records

    def execute(
        self, model: ResolvedModel, record: TransferRecord, *, progress: Progress | None = None
    ) -> TransferResult:
        token = logs.context.set(
            {
                "connection": self.conn.name,
                "tenant": self.conn.tenant,
                "model": model.name,
                "transfer": record.id,
            }
        )
        try:
            return self._execute(model, record, resumed=record.attempts > 0, progress=progress)
        finally:
            logs.context.reset(token)

    def _start_time(self, model: str) -> datetime:
        """File names carry the start time to the second; two transfers of one model must not
        share a second, or the second would overwrite the first's files."""
        last = self.transfers.last_started_at(self.conn.id, model)
        while True:
            now = self.clock()
            if last is None or now.replace(microsecond=0) > last.replace(microsecond=0):
                return now
            self.sleep(1.0 - now.microsecond / 1e6 + 0.001)

    # -- execution ---------------------------------------------------------------------------

    def _execute(
        self,
        model: ResolvedModel,
        record: TransferRecord,
        *,
        resumed: bool,
        progress: Progress | None,
    ) -> TransferResult:
        opened = self.begin(model, record, resumed=resumed, progress=progress)
        if isinstance(opened, TransferResult):
            return opened
        try:
            checked = time.monotonic()
            for batch in self._read_ahead(model, record, opened.schema):
                self.deliver(opened, batch)
                if time.monotonic() - checked > 1.0:
                    checked = time.monotonic()
                    if self.transfers.cancel_requested(record.id):
                        return self.cancel_open(opened)
        except BaseException as exc:
            self.fail(opened, exc)
        return self.complete(opened)

    def begin(
        self,
        model: ResolvedModel,
        record: TransferRecord,
        *,
        resumed: bool,
        progress: Progress | None = None,
    ) -> OpenTransfer | TransferResult:
        """Start an attempt at ``record``: the state the batches are written into (`deliver`,
        then `complete`), or the result when the transfer was cancelled before it started."""
        previous = self.transfers.files(record.id)
        if self.transfers.cancel_requested(record.id):
            return self._cancel(model, record, previous)
        attempt = self.transfers.start_attempt(record.id)
        opened = OpenTransfer(model=model, record=record, resumed=resumed, previous=previous)
        try:
            self._abort_leftover_uploads(previous)
            if self.catalog is not None:
                # Columns reach the catalog before any file carrying them is written.
                self.catalog.sync(
                    model,
                    transfer_date=record.started_at.astimezone(UTC).date(),
                    snapshot=self.transfers.last_full_refresh(self.conn.id, model.name),
                )
            opened.excluded = self._null_cursor_rows(model)  # refused before any file
            opened.schema = delivered_schema(model)
            opened.writer = RollingParquetWriter(
                opened.schema,
                open_object=lambda part: self._open_file(record, model, part, attempt),
                on_file=lambda f: self.transfers.file_committed(
                    record.id, f.file_part, rows=f.rows, size=f.bytes, sha256=f.sha256
                ),
                row_group_bytes=self.options.row_group_bytes,
                file_target_bytes=self.options.file_target_bytes,
            )
            opened.report = self._reporter(model, record, opened.writer, progress)
            opened.report(0)
        except BaseException as exc:
            self.fail(opened, exc)
        return opened

    def deliver(
        self, opened: OpenTransfer, batch: pa.RecordBatch, *, nbytes: int | None = None
    ) -> None:
        """Write one batch of the window (already cast, hashed and flagged); ``nbytes``: its
        Arrow bytes when the caller knows them (see ``RollingParquetWriter.write``)."""
        assert opened.writer is not None
        opened.writer.write(batch, nbytes=nbytes)
        opened.delivered += batch.num_rows
        opened.report(opened.delivered)

    def cancel_open(self, opened: OpenTransfer) -> TransferResult:
        """Stop a started transfer whose cancellation was requested: its files go."""
        if opened.writer is not None:
            opened.writer.abort()
            opened.writer = None
        return self._cancel(opened.model, opened.record, self.transfers.files(opened.record.id))

    def complete(self, opened: OpenTransfer, *, held: int | None = None) -> TransferResult:
        """Finish the files, write the manifest and commit: the window is delivered. ``held``:
        the rows the settle lag kept for the next window, when the caller counted them."""
        model, record = opened.model, opened.record
        try:
            assert opened.writer is not None
            files = opened.writer.finish()
            opened.writer = None
            self._void_surplus(
                opened.previous, keep=len(files), record=record, schema=opened.schema
            )
            rows = sum(f.rows for f in files)
            if held is None:
                held = 0 if opened.resumed else self.held_back(model, record)
            note = self._note(model, rows=rows, excluded=opened.excluded, held=held, before=record)
            manifest_key = self._write_manifest(
                model, record, files, note=note, excluded_rows=opened.excluded
            )
            succeeded = self.transfers.commit(
                record,
                rows=rows,
                size=sum(f.bytes for f in files),
                files=len(files),
                manifest_key=manifest_key,
                columns=delivered_columns(model),
                now=self.clock(),
                note=note,
                excluded_rows=opened.excluded,
                within=self.on_commit,
            )
        except BaseException as exc:
            self.fail(opened, exc)
        if self.catalog is not None and record.type is TransferType.FULL_REFRESH:
            self._move_snapshot(model, record)
        return TransferResult(
            record=succeeded, resumed=opened.resumed, warnings=model.warnings, held_back=held or 0
        )

    def fail(self, opened: OpenTransfer, exc: BaseException) -> NoReturn:
        """Record the failure, leave nothing visible, and raise it (a ByobError as it is,
        anything else as a TransferError saying the window will be retried)."""
        message = exc.message if isinstance(exc, ByobError) else f"{type(exc).__name__}: {exc}"
        # Record the failure first: the abort below may itself be refused (a withdrawn
        # policy), and the original error is the one that matters.
        self.transfers.fail(opened.record.id, message, now=self.clock())
        if opened.writer is not None:
            writer, opened.writer = opened.writer, None
            try:
                writer.abort()
            except Exception as abort_exc:
                log.warning("aborting the upload failed too: %s", abort_exc)
        if isinstance(exc, ByobError):
            raise exc
        if isinstance(exc, Exception):
            raise TransferError(
                f"transfer of model {opened.model.name!r} failed: {message}; nothing was "
                "committed and the next run retries the same window"
            ) from exc
        raise exc

    def _move_snapshot(self, model: ResolvedModel, record: TransferRecord) -> None:
        """A committed full refresh is the catalog's new snapshot: the latest-version view
        reads from its files on, so rows deleted at the source before it leave the view. If
        the catalog refuses now, the next transfer's sync moves it."""
        try:
            assert self.catalog is not None
            self.catalog.sync(
                model,
                transfer_date=record.started_at.astimezone(UTC).date(),
                snapshot=record.started_at,
            )
        except ByobError as exc:
            log.warning("the latest-version view still reads the previous snapshot: %s", exc)

    def _cancel(
        self, model: ResolvedModel, record: TransferRecord, files: list[FileRecord]
    ) -> TransferResult:
        """Remove (or empty) every file the transfer wrote: its window will be delivered again
        by the next transfer, so nothing of it may stay visible."""
        self._abort_leftover_uploads(files)
        self._void_surplus(files, keep=0, record=record, schema=delivered_schema(model))
        self.transfers.cancelled(record.id, now=self.clock())
        return TransferResult(record=self.transfers.get(record.id), resumed=False, warnings=())

    def _open_file(
        self, record: TransferRecord, model: ResolvedModel, part: int, attempt: int
    ) -> tuple[str, ObjectWriter]:
        stamp = layout.TransferStamp(started_at=record.started_at)
        key = layout.data_key(self.conn.data_prefix, model.name, stamp, part)
        self.transfers.file_started(record.id, part, key, attempt)
        writer = self.destination.open_writer(
            key,
            on_started=lambda upload_id: self.transfers.file_upload_id(record.id, part, upload_id),
        )
        return key, writer

    def _read_ahead(
        self, model: ResolvedModel, record: TransferRecord, schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        """Read and cast in a second thread so reading overlaps encoding and uploading: the
        window's rows, then the tombstones of the keys deleted in it (the same window, so a
        retry re-reads the same ones and the window's bookkeeping covers them too)."""

        def batches_of_window() -> Iterator[pa.RecordBatch]:
            read_schema = arrow_schema(model)
            # Hashed columns are hashed here, before anything else sees the batch.
            for raw in self.source.read(model, self.conn.tenant, record.window):
                read = hash_columns(conform(raw, read_schema, model), model, self.hasher)
                yield flag_deleted(read, model, schema)
            if model.spec.capture_deletes:
                for keys in self.source.read_deleted(model, self.conn.tenant, record.window):
                    yield hash_columns(tombstones(keys, model, schema), model, self.hasher)

        return read_ahead(
            batches_of_window, depth=self.options.read_ahead_batches, name=f"read-{model.name}"
        )

    def _abort_leftover_uploads(self, previous: list[FileRecord]) -> None:
        for f in previous:
            if f.state is FileState.STARTED and f.upload_id:
                self.destination.abort_upload(f.key, f.upload_id)

    def _void_surplus(
        self, previous: list[FileRecord], *, keep: int, record: TransferRecord, schema: pa.Schema
    ) -> None:
        """Files an earlier attempt started beyond this attempt's count would duplicate rows."""
        surplus = [f for f in previous if f.file_part > keep and f.state is not FileState.VOID]
        empty: bytes | None = None
        for f in surplus:
            try:
                self.destination.delete(f.key)
            except DestinationError:
                # s3:DeleteObject may be withdrawn after activation; an empty file has the same
                # effect on every reader and needs only s3:PutObject.
                empty = empty or empty_parquet(schema)
                self.destination.put(f.key, empty)
            self.transfers.file_voided(record.id, f.file_part)

    def _null_cursor_rows(self, model: ResolvedModel) -> int:
        """Rows of the tenant whose cursor is NULL fall in no window. Refuse them (the default)
        or count the ones left out; a model that delivers them in backfills needs no count."""
        policy = model.spec.on_null_cursor
        if policy is NullCursor.BACKFILL_ONLY:
            return 0
        nulls = self.source.count(model, tenant=self.conn.tenant, null_cursor=True)
        if nulls and policy is NullCursor.FAIL:
            cursor = model.spec.cursor_column
            raise NullCursorError(
                f"model {model.name!r}: {nulls} rows of tenant {self.conn.tenant!r} have a NULL "
                f"{cursor!r}, so they belong to no transfer window; nothing was written. Give "
                f"them a value and add a NOT NULL constraint, COALESCE {cursor!r} in a query "
                'model, or set on_null_cursor = "backfill_only" (delivered in backfills and '
                'full refreshes) or "exclude" (left out, counted in each transfer)',
                field="on_null_cursor",
            )
        return nulls

    def _reporter(
        self,
        model: ResolvedModel,
        record: TransferRecord,
        writer: RollingParquetWriter,
        progress: Progress | None,
    ) -> Callable[[int], None]:
        """Tell ``progress`` how far the transfer is; its total is a count of the window, made
        only when it asks for one (`WithTotal`)."""
        if progress is None:
            return lambda rows: None
        total: int | None = None
        if isinstance(progress, WithTotal):
            try:
                total = self.source.count(model, tenant=self.conn.tenant, window=record.window)
            except SourceError as exc:  # a display's total is not worth failing a transfer for
                log.warning("counting the window for progress failed: %s", exc)
        started = time.monotonic()

        def report(rows: int) -> None:
            progress(
                TransferProgress(
                    transfer_id=record.id,
                    model=model.name,
                    rows=rows,
                    bytes=writer.bytes_written,
                    total=total,
                    estimated=False,
                    elapsed=time.monotonic() - started,
                )
            )

        return report

    def held_back(self, model: ResolvedModel, record: TransferRecord) -> int:
        """The tenant's rows with a cursor in (window high, now]: the settle lag keeps them for
        the next transfer. Not counted for a resumed window, which a newer one follows."""
        if self.options.settle_lag <= timedelta(0):
            return 0
        try:
            now = self.source.now()
            if now <= record.window.high:
                return 0
            return self.source.count(
                model, tenant=self.conn.tenant, window=Window(low=record.window.high, high=now)
            )
        except SourceError as exc:  # a note is not worth failing a delivered transfer for
            log.warning("counting the rows held back by the settle lag failed: %s", exc)
            return 0

    def _note(
        self, model: ResolvedModel, *, rows: int, excluded: int, held: int, before: TransferRecord
    ) -> str | None:
        """What the figures do not say on their own."""
        notes = []
        if before.status is TransferStatus.FAILED:
            # The same window and file names, so the same record: it says what happened.
            notes.append(
                f"finished by attempt {before.attempts + 1} after attempt {before.attempts} "
                f"had failed ({before.error})"
            )
        if excluded:
            notes.append(
                f"{excluded} rows with a NULL {model.spec.cursor_column!r} were left out "
                '(on_null_cursor = "exclude")'
            )
        if rows == 0 and not held and not self.transfers.rows_delivered(self.conn.id, model.name):
            notes.append(
                f"0 rows: tenant {self.conn.tenant!r} has no rows in this model yet; check that "
                "it is the tenant column's exact value"
            )
        lag = held_back_note(held, settle_lag_seconds=self.options.settle_lag.total_seconds())
        if lag:
            notes.append(lag)
        return "; ".join(notes) or None

    def _write_manifest(
        self,
        model: ResolvedModel,
        record: TransferRecord,
        files: list[WrittenFile],
        *,
        note: str | None,
        excluded_rows: int,
    ) -> str:
        stamp = layout.TransferStamp(started_at=record.started_at)
        key = layout.manifest_key(self.conn.data_prefix, model.name, stamp, record.id)
        document = manifest(
            transfer_id=record.id,
            connection=self.conn.name,
            tenant=self.conn.tenant,
            model=model.name,
            kind=record.type,
            window=record.window,
            started_at=record.started_at,
            files=[
                {"key": f.key, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in files
            ],
            columns=delivered_columns(model),
            location=self.destination.url(layout.model_prefix(self.conn.data_prefix, model.name)),
            note=note,
            excluded_rows=excluded_rows,
        )
        if self.signer is not None:
            document = self.signer.sign(document)
        # schema.json first, rewritten by every transfer: it always describes the files the
        # newest manifest lists, and a recipient who deleted it gets it back.
        schema = json.dumps(schema_document(model), indent=2).encode()
        self.destination.put(
            layout.schema_key(self.conn.data_prefix, model.name),
            schema,
            content_type="application/json",
        )
        body = json.dumps(document, indent=2).encode()
        self.destination.put(key, body, content_type="application/json")
        return key


def _column_type(col: dict[str, Any]) -> ColumnType:
    """Rebuild a delivered column's type from its stored form (e.g. 'decimal(18,2)')."""
    from byob.domain import types as t

    text = col["type"]
    if text == "timestamptz":
        return t.TIMESTAMPTZ
    if text.startswith("decimal("):
        p, s = text[len("decimal(") : -1].split(",")
        return t.decimal(int(p), int(s))
    if text.startswith("array<"):
        return t.list_of(_column_type({"type": text[len("array<") : -1]}))
    return ColumnType(kind=Kind(text))
