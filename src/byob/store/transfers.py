"""Transfers and their files: the durable log that makes a retry exactly-once (implements the
engine's `TransferLog`), and the delivery figures /metrics reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.domain.connections import Direction, Status
from byob.domain.paging import Cursor, Page
from byob.domain.transfers import (
    PENDING,
    FileRecord,
    FileState,
    ModelState,
    TransferFilter,
    TransferRecord,
    TransferStatus,
)
from byob.domain.windows import TransferType, Window
from byob.errors import ConflictError, NotFoundError
from byob.store import tables as T
from byob.store.keyset import newest_first
from byob.store.repository import Repository, new_id, restored

_PENDING = [s.value for s in PENDING]


def _transfer(row: Any) -> TransferRecord:
    return _transfer_of(dict(row._mapping))


# Stored values to members by dictionary, not by calling the enum (~2 µs each, in every row of
# the history and of the connections list).
_TYPES = {member.value: member for member in TransferType}
_STATUSES = {member.value: member for member in TransferStatus}


def _transfer_of(m: dict[str, Any]) -> TransferRecord:
    m["window"] = Window(low=m.pop("window_low"), high=m.pop("window_high"))
    m["type"] = _TYPES[m["type"]]
    m["status"] = _STATUSES[m["status"]]
    m.pop("connection_id_1", None)
    return restored(TransferRecord, m)


def _matching(which: TransferFilter) -> list[sa.ColumnElement[bool]]:
    """The WHERE clause of a filtered list, every value a bound parameter."""
    c = T.transfers.c
    where: list[sa.ColumnElement[bool]] = []
    if which.connection_id is not None:
        where.append(c.connection_id == which.connection_id)
    if which.tenant is not None:
        of_tenant = sa.select(T.connections.c.id).where(T.connections.c.tenant == which.tenant)
        where.append(c.connection_id.in_(of_tenant))
    if which.statuses:
        where.append(c.status.in_(sorted(s.value for s in which.statuses)))
    if which.since is not None:
        where.append(c.created_at >= which.since)
    return where


class Transfers(Repository):
    def model_state(self, connection_id: str, model: str) -> ModelState:
        c = T.model_states.c
        with self.reading() as db:
            row = db.execute(
                sa.select(c.high_water_mark, c.last_transfer_id, c.columns).where(
                    c.connection_id == connection_id, c.model == model
                )
            ).first()
        if row is None:
            return ModelState(high_water_mark=None, last_transfer_id=None, columns=None)
        return ModelState(**row._mapping)

    def still_read_from(self, model: str) -> dict[str, datetime]:
        """Per tenant, the earliest time from which one of its connections will still read
        the model's captured deletes: of each connection receiving the model and not disabled,
        its high-water mark, else the window end of its oldest unfinished transfer (a backfill
        reads a snapshot taken when its query starts, so a row deleted after the window end
        may be in its files and its tombstone must reach the next transfer). A connection with
        neither reads none: its first transfer is a backfill not yet planned. Tenants no
        connection waits for are left out."""
        c, s, t = T.connections.c, T.model_states.c, T.transfers.c
        unfinished = (
            sa.select(t.connection_id, sa.func.min(t.window_high).label("window_high"))
            .where(t.model == model, t.status.in_(_PENDING))
            .group_by(t.connection_id)
            .subquery()
        )
        needed = sa.func.coalesce(s.high_water_mark, unfinished.c.window_high)
        # Grouped by selection too, as text (PostgreSQL's json has no equality), so a tenant
        # comes back as a row per distinct selection rather than one per connection.
        selection = sa.cast(c.models, sa.Text)
        query = (
            sa.select(c.tenant, selection, sa.func.min(needed))
            .select_from(
                T.connections.outerjoin(
                    T.model_states, sa.and_(s.connection_id == c.id, s.model == model)
                ).outerjoin(unfinished, unfinished.c.connection_id == c.id)
            )
            .where(
                c.status != Status.DISABLED.value,
                c.direction == Direction.EXPORT.value,
                needed.is_not(None),
            )
            .group_by(c.tenant, selection)
        )
        bounds: dict[str, datetime] = {}
        with self.reading() as db:
            for tenant, chosen, since in db.execute(query):
                models = json.loads(chosen) if chosen is not None else None
                if models is not None and model not in models:
                    continue  # deselected: selecting it again restarts it with a backfill
                bounds[tenant] = min(since, bounds.get(tenant, since))
        return bounds

    def pending(self, connection_id: str, model: str) -> list[TransferRecord]:
        """Transfers not yet succeeded, oldest first: they must finish in this order, since
        each one's window starts where the previous one's ends."""
        c = T.transfers.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(T.transfers)
                .where(c.connection_id == connection_id, c.model == model, c.status.in_(_PENDING))
                .order_by(c.created_at, c.started_at)
            )
            return [_transfer(r) for r in rows]

    def plan(
        self,
        *,
        connection_id: str,
        model: str,
        kind: TransferType,
        window: Window,
        started_at: datetime,
        now: datetime,
    ) -> TransferRecord:
        """Persist the window before reading, so a retry reads the same one."""
        with self.writing() as db:
            row = db.execute(
                T.transfers.insert()
                .values(
                    id=new_id(),
                    connection_id=connection_id,
                    model=model,
                    type=kind.value,
                    status=TransferStatus.PLANNED.value,
                    started_at=started_at,
                    window_low=window.low,
                    window_high=window.high,
                    rows=0,
                    bytes=0,
                    files=0,
                    attempts=0,
                    created_at=now,
                )
                .returning(T.transfers)  # the record as stored, without reading it again
            ).one()
        return _transfer(row)

    def rows_delivered(self, connection_id: str, model: str) -> int:
        """Rows every succeeded transfer of the model delivered to the connection."""
        c = T.transfers.c
        with self.reading() as db:
            value = db.execute(
                sa.select(sa.func.coalesce(sa.func.sum(c.rows), 0)).where(
                    c.connection_id == connection_id,
                    c.model == model,
                    c.status == TransferStatus.SUCCEEDED.value,
                )
            ).scalar_one()
        return int(value)

    def stranded(self, *, planned_before: datetime) -> list[TransferRecord]:
        """Windows fixed before ``planned_before`` that no attempt ever started: whatever was
        to run them (a process, a job) is gone."""
        c = T.transfers.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(T.transfers)
                .where(
                    c.status == TransferStatus.PLANNED.value,
                    c.attempts == 0,
                    c.created_at < planned_before,
                )
                .order_by(c.created_at)
            )
            return [_transfer(r) for r in rows]

    def last_full_refresh(self, connection_id: str, model: str) -> datetime | None:
        """When the newest succeeded full refresh (or backfill) of the model started."""
        c = T.transfers.c
        with self.reading() as db:
            value = db.execute(
                sa.select(sa.func.max(c.started_at)).where(
                    c.connection_id == connection_id,
                    c.model == model,
                    c.status == TransferStatus.SUCCEEDED.value,
                    c.type == TransferType.FULL_REFRESH.value,
                )
            ).scalar()
        return value if isinstance(value, datetime) else None

    def last_started_at(self, connection_id: str, model: str) -> datetime | None:
        c = T.transfers.c
        with self.reading() as db:
            value = db.execute(
                sa.select(sa.func.max(c.started_at)).where(
                    c.connection_id == connection_id, c.model == model
                )
            ).scalar()
        return value if isinstance(value, datetime) else None

    def get(self, transfer_id: str) -> TransferRecord:
        with self.reading() as db:
            row = db.execute(sa.select(T.transfers).where(T.transfers.c.id == transfer_id)).first()
        if row is None:
            raise NotFoundError(f"no transfer {transfer_id!r}")
        return _transfer(row)

    def ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        return self._ids_starting_with(T.transfers, prefix, limit)

    def history(self, connection_id: str, *, limit: int = 50) -> list[TransferRecord]:
        """The newest ``limit``, newest first."""
        return self.page(TransferFilter(connection_id=connection_id), limit=limit).items

    def page(
        self,
        which: TransferFilter,
        *,
        after: Cursor | None = None,
        before: Cursor | None = None,
        limit: int = 50,
    ) -> Page[TransferRecord]:
        """Newest first, of every connection unless ``which`` narrows it: a keyset page (see
        `store.keyset`) in one query."""
        with self.reading() as db:
            return newest_first(
                db,
                T.transfers,
                list(T.transfers.c),
                _matching(which),
                after=after,
                before=before,
                limit=limit,
                item=_transfer_of,
            )

    def start_attempt(self, transfer_id: str) -> int:
        c = T.transfers.c
        with self.writing() as db:
            return int(
                db.execute(
                    T.transfers.update()
                    .where(c.id == transfer_id)
                    .values(
                        status=TransferStatus.RUNNING.value, attempts=c.attempts + 1, error=None
                    )
                    .returning(c.attempts)
                ).scalar_one()
            )

    def files(self, transfer_id: str) -> list[FileRecord]:
        c = T.transfer_files.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(c.file_part, c.key, c.state, c.upload_id, c.rows, c.bytes, c.sha256)
                .where(c.transfer_id == transfer_id)
                .order_by(c.file_part)
            )
            return [FileRecord(**(dict(r._mapping) | {"state": FileState(r.state)})) for r in rows]

    def file_started(self, transfer_id: str, file_part: int, key: str, attempt: int) -> None:
        """Recorded before the first byte is sent: the file may exist from now on."""
        c = T.transfer_files.c
        with self.writing() as db:
            updated = db.execute(
                T.transfer_files.update()
                .where(c.transfer_id == transfer_id, c.file_part == file_part)
                .values(
                    state=FileState.STARTED.value,
                    upload_id=None,
                    rows=0,
                    bytes=0,
                    sha256=None,
                    attempt=attempt,
                )
            ).rowcount
            if not updated:
                db.execute(
                    T.transfer_files.insert().values(
                        transfer_id=transfer_id,
                        file_part=file_part,
                        key=key,
                        state=FileState.STARTED.value,
                        rows=0,
                        bytes=0,
                        attempt=attempt,
                    )
                )

    def _set_file(self, transfer_id: str, file_part: int, **values: Any) -> None:
        c = T.transfer_files.c
        with self.writing() as db:
            db.execute(
                T.transfer_files.update()
                .where(c.transfer_id == transfer_id, c.file_part == file_part)
                .values(**values)
            )

    def file_upload_id(self, transfer_id: str, file_part: int, upload_id: str) -> None:
        self._set_file(transfer_id, file_part, upload_id=upload_id)

    def file_committed(
        self, transfer_id: str, file_part: int, *, rows: int, size: int, sha256: str
    ) -> None:
        self._set_file(
            transfer_id,
            file_part,
            state=FileState.COMMITTED.value,
            upload_id=None,
            rows=rows,
            bytes=size,
            sha256=sha256,
        )

    def file_voided(self, transfer_id: str, file_part: int) -> None:
        self._set_file(
            transfer_id,
            file_part,
            state=FileState.VOID.value,
            upload_id=None,
            rows=0,
            bytes=0,
            sha256=None,
        )

    def request_cancel(self, transfer_id: str, *, now: datetime) -> TransferRecord:
        """A queued transfer is cancelled at once; a running one stops at its next batch and
        removes its files. Later windows of the model start where this one starts, so they
        are cancelled with it and the next transfer covers them all again."""
        record = self.get(transfer_id)
        c = T.transfers.c
        tail = sa.and_(
            c.connection_id == record.connection_id,
            c.model == record.model,
            c.status.in_(_PENDING),
            c.created_at >= record.created_at,
        )
        with self.writing() as db:
            db.execute(
                T.transfers.update()
                .where(tail, c.status == TransferStatus.PLANNED.value, c.attempts == 0)
                .values(
                    status=TransferStatus.CANCELLED.value,
                    finished_at=now,
                    error="cancelled before it started",
                )
            )
            db.execute(T.transfers.update().where(tail).values(cancel_requested=True))
        return self.get(transfer_id)

    def cancel_requested(self, transfer_id: str) -> bool:
        c = T.transfers.c
        with self.reading() as db:
            return bool(
                db.execute(sa.select(c.cancel_requested).where(c.id == transfer_id)).scalar()
            )

    def cancelled(self, transfer_id: str, *, now: datetime) -> None:
        with self.writing() as db:
            db.execute(
                T.transfers.update()
                .where(T.transfers.c.id == transfer_id)
                .values(
                    status=TransferStatus.CANCELLED.value,
                    finished_at=now,
                    error="cancelled; its files were removed",
                )
            )

    def fail(self, transfer_id: str, error: str, *, now: datetime) -> None:
        with self.writing() as db:
            db.execute(
                T.transfers.update()
                .where(T.transfers.c.id == transfer_id)
                .values(status=TransferStatus.FAILED.value, error=error[:4000], finished_at=now)
            )

    def commit(
        self,
        record: TransferRecord,
        *,
        rows: int,
        size: int,
        files: int,
        manifest_key: str,
        columns: list[dict[str, Any]],
        now: datetime,
        note: str | None = None,
        excluded_rows: int = 0,
        within: Callable[[Any, TransferRecord], None] | None = None,
    ) -> TransferRecord:
        """One transaction: the transfer succeeds and the high-water mark advances together;
        ``within`` (given a state store bound to that transaction and the succeeded record)
        adds what must commit with them, such as the event that reports it. Returns the
        succeeded record."""
        c = T.model_states.c
        with self.writing() as db:
            succeeded = _succeed(
                db,
                record.id,
                rows=rows,
                bytes=size,
                files=files,
                manifest_key=manifest_key,
                finished_at=now,
                note=note,
                excluded_rows=excluded_rows,
            )
            values = {
                "high_water_mark": record.window.high,
                "last_transfer_id": record.id,
                "columns": columns,
                "updated_at": now,
            }
            updated = db.execute(
                T.model_states.update()
                .where(c.connection_id == record.connection_id, c.model == record.model)
                .values(**values)
            ).rowcount
            if not updated:
                db.execute(
                    T.model_states.insert().values(
                        connection_id=record.connection_id, model=record.model, **values
                    )
                )
            if within is not None:
                from byob.store.state import StateStore

                within(StateStore(db), succeeded)
        return succeeded

    def finish_import(
        self,
        record: TransferRecord,
        *,
        counts: dict[str, int],
        rows: int,
        size: int,
        files: int,
        note: str | None,
        now: datetime,
        within: Callable[[Any, TransferRecord], None] | None = None,
    ) -> TransferRecord:
        """An import run succeeded: its figures and object counts, and (``within``) what must
        commit with them. The rows themselves committed in the target database, file by file,
        with the ledger that keeps them exactly once."""
        with self.writing() as db:
            finished = _succeed(
                db,
                record.id,
                rows=rows,
                bytes=size,
                files=files,
                finished_at=now,
                note=note,
                import_counts=counts,
            )
            if within is not None:
                from byob.store.state import StateStore

                within(StateStore(db), finished)
        return finished

    def restart_model(self, connection_id: str, model: str, *, now: datetime) -> None:
        """A model selected again: its unfinished transfers are cancelled and its next
        transfer is a backfill (what changed while it was not selected is delivered too)."""
        c = T.transfers.c
        with self.writing() as db:
            db.execute(
                T.transfers.update()
                .where(c.connection_id == connection_id, c.model == model, c.status.in_(_PENDING))
                .values(
                    status=TransferStatus.CANCELLED.value,
                    finished_at=now,
                    error="the model was selected again; a backfill delivers it whole",
                )
            )
            s = T.model_states.c
            db.execute(
                T.model_states.update()
                .where(s.connection_id == connection_id, s.model == model)
                .values(high_water_mark=None, updated_at=now)
            )

    def import_progress(
        self, transfer_id: str, *, counts: dict[str, int], rows: int, size: int, files: int
    ) -> None:
        """What a failed or cancelled import run did before it stopped (its loaded files
        stay loaded)."""
        with self.writing() as db:
            db.execute(
                T.transfers.update()
                .where(T.transfers.c.id == transfer_id)
                .values(rows=rows, bytes=size, files=files, import_counts=counts)
            )

    # -- figures for /metrics ------------------------------------------------------------------

    def counts_by_status(self) -> dict[str, int]:
        c = T.transfers.c
        with self.reading() as db:
            rows = db.execute(sa.select(c.status, sa.func.count()).group_by(c.status))
            return {str(status): int(n) for status, n in rows}

    def delivered(self) -> tuple[int, int]:
        """Rows and Parquet bytes delivered by succeeded transfers (exports)."""
        return self._succeeded_totals(T.transfers.c.type != TransferType.IMPORT.value)

    def imported(self) -> tuple[int, int]:
        """Rows and file bytes loaded by succeeded import runs."""
        return self._succeeded_totals(T.transfers.c.type == TransferType.IMPORT.value)

    def _succeeded_totals(self, which: sa.ColumnElement[bool]) -> tuple[int, int]:
        c = T.transfers.c
        with self.reading() as db:
            rows, size = db.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(c.rows), 0),
                    sa.func.coalesce(sa.func.sum(c.bytes), 0),
                ).where(c.status == TransferStatus.SUCCEEDED.value, which)
            ).one()
        return int(rows), int(size)

    def durations(self) -> list[float]:
        """Seconds each succeeded transfer took."""
        c = T.transfers.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(c.started_at, c.finished_at).where(
                    c.status == TransferStatus.SUCCEEDED.value, c.finished_at.is_not(None)
                )
            )
            return [(finished - started).total_seconds() for started, finished in rows]


def _succeed(db: sa.Connection, transfer_id: str, **values: Any) -> TransferRecord:
    """Running → succeeded with its figures (the record as it is now), or refused: a transfer
    cancelled (or finished by another worker) meanwhile is not committed over."""
    c = T.transfers.c
    done = db.execute(
        T.transfers.update()
        .where(c.id == transfer_id, c.status == TransferStatus.RUNNING.value)
        .values(status=TransferStatus.SUCCEEDED.value, error=None, **values)
        .returning(T.transfers)
    ).all()
    if len(done) != 1:
        raise ConflictError(f"transfer {transfer_id} is no longer running; not committed")
    return _transfer(done[0])
