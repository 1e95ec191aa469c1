"""Reading and writing state. Every query is parameterised; tenants never mix."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.domain.connections import AuthKind, Connection, ConnectionType, Status
from byob.domain.windows import TransferType, Window
from byob.errors import ConflictError, NotFoundError
from byob.store import tables as T


def new_id() -> str:
    return uuid.uuid4().hex


_RENAMED = {"schema": "schema_name", "database": "database_name"}


def _connection_row(conn: Connection) -> dict[str, Any]:
    row = {_RENAMED.get(f.name, f.name): getattr(conn, f.name) for f in dataclasses.fields(conn)}
    return {k: (v.value if hasattr(v, "value") else v) for k, v in row.items()}


def _connection(row: Any) -> Connection:
    m = dict(row._mapping)
    m.pop("secret_sealed", None)
    for column, field_name in _RENAMED.items():
        m[column] = m.pop(field_name)
    m["type"] = ConnectionType(m["type"])
    m["status"] = Status(m["status"])
    m["auth"] = AuthKind(m["auth"])
    return Connection(**m)


class Connections:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, conn: Connection, *, secret_sealed: str | None = None) -> Connection:
        try:
            with self.engine.begin() as db:
                db.execute(
                    T.connections.insert().values(
                        **_connection_row(conn), secret_sealed=secret_sealed
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"a connection named {conn.name!r} already exists; choose another name",
                field="name",
            ) from exc
        return conn

    def save(self, conn: Connection, *, secret_sealed: str | None = None) -> Connection:
        """Save; ``secret_sealed`` replaces the sealed secret ("" erases it), None keeps it."""
        values = _connection_row(conn)
        if secret_sealed is not None:
            values["secret_sealed"] = secret_sealed or None
        with self.engine.begin() as db:
            db.execute(T.connections.update().where(T.connections.c.id == conn.id).values(**values))
        return conn

    def delete(self, connection_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(T.connections.delete().where(T.connections.c.id == connection_id))

    def get(self, name_or_id: str) -> Connection:
        c = T.connections.c
        with self.engine.connect() as db:
            # An ID is exact and wins; names are looked up only when no ID matches.
            row = db.execute(sa.select(T.connections).where(c.id == name_or_id)).first()
            if row is None:
                row = db.execute(sa.select(T.connections).where(c.name == name_or_id)).first()
        if row is None:
            raise NotFoundError(f"no connection named {name_or_id!r}", field="name")
        return _connection(row)

    def schedulable(self, now: datetime) -> list[Connection]:
        """Active, healthy connections whose current schedule slot has not been dispatched."""
        from byob.domain.schedules import FREQUENCIES, slot_start

        c = T.connections.c
        per_frequency = [
            sa.and_(
                c.frequency_minutes == f,
                sa.or_(c.last_slot.is_(None), c.last_slot < slot_start(f, now)),
            )
            for f in FREQUENCIES
        ]
        query = sa.select(T.connections).where(
            c.status == "active", c.failing_check.is_(None), sa.or_(*per_frequency)
        )
        with self.engine.connect() as db:
            return [_connection(r) for r in db.execute(query)]

    def claim_slot(self, connection_id: str, *, previous: datetime | None, slot: datetime) -> bool:
        """Compare-and-set the dispatched slot: of many schedulers, exactly one wins a slot."""
        c = T.connections.c
        same = c.last_slot.is_(None) if previous is None else c.last_slot == previous
        with self.engine.begin() as db:
            done = db.execute(
                T.connections.update().where(c.id == connection_id, same).values(last_slot=slot)
            ).rowcount
        return done == 1

    def release_slot(
        self, connection_id: str, *, slot: datetime, previous: datetime | None
    ) -> None:
        """Undo a claim whose dispatch failed, so the next tick tries the slot again."""
        c = T.connections.c
        with self.engine.begin() as db:
            db.execute(
                T.connections.update()
                .where(c.id == connection_id, c.last_slot == slot)
                .values(last_slot=previous)
            )

    def mark_failing(self, connection_id: str, *, check: str, message: str, now: datetime) -> None:
        with self.engine.begin() as db:
            db.execute(
                T.connections.update()
                .where(T.connections.c.id == connection_id)
                .values(failing_check=check, failing_message=message[:4000], failing_since=now)
            )

    def clear_failing(self, connection_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(
                T.connections.update()
                .where(T.connections.c.id == connection_id)
                .values(failing_check=None, failing_message=None, failing_since=None)
            )

    def sealed_secret(self, connection_id: str) -> str | None:
        with self.engine.connect() as db:
            return db.execute(
                sa.select(T.connections.c.secret_sealed).where(T.connections.c.id == connection_id)
            ).scalar()

    def list(
        self, *, tenant: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Connection]:
        query = sa.select(T.connections).order_by(T.connections.c.created_at, T.connections.c.id)
        if tenant is not None:
            query = query.where(T.connections.c.tenant == tenant)
        query = query.limit(limit).offset(offset)
        with self.engine.connect() as db:
            return [_connection(r) for r in db.execute(query)]


@dataclass(frozen=True, kw_only=True)
class Validation:
    connection_id: str
    fingerprint: str
    passed: bool
    checks: list[dict[str, Any]]
    created_at: datetime


class Validations:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, v: Validation) -> None:
        with self.engine.begin() as db:
            db.execute(T.validations.insert().values(**dataclasses.asdict(v)))

    def latest(self, connection_id: str) -> Validation | None:
        c = T.validations.c
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(c.connection_id, c.fingerprint, c.passed, c.checks, c.created_at)
                .where(c.connection_id == connection_id)
                .order_by(c.id.desc())
                .limit(1)
            ).first()
        return Validation(**row._mapping) if row else None


@dataclass(frozen=True, kw_only=True)
class ModelState:
    high_water_mark: datetime | None
    last_transfer_id: str | None
    columns: list[dict[str, Any]] | None


@dataclass(frozen=True, kw_only=True)
class TransferRecord:
    id: str
    connection_id: str
    model: str
    type: TransferType
    status: str
    started_at: datetime
    window: Window
    rows: int
    bytes: int
    files: int
    attempts: int
    error: str | None
    manifest_key: str | None
    created_at: datetime
    finished_at: datetime | None
    cancel_requested: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "type": self.type.value,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "window": {
                "low": self.window.low.isoformat() if self.window.low else None,
                "high": self.window.high.isoformat(),
            },
            "rows": self.rows,
            "bytes": self.bytes,
            "files": self.files,
            "attempts": self.attempts,
            "error": self.error,
            "manifest": self.manifest_key,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True, kw_only=True)
class FileRecord:
    file_part: int
    key: str
    state: str
    upload_id: str | None
    rows: int
    bytes: int
    sha256: str | None


def _transfer(row: Any) -> TransferRecord:
    m = dict(row._mapping)
    m["window"] = Window(low=m.pop("window_low"), high=m.pop("window_high"))
    m["type"] = TransferType(m["type"])
    m.pop("connection_id_1", None)
    return TransferRecord(**m)


class Transfers:
    """Transfers and their files: the durable log that makes a retry exactly-once."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def model_state(self, connection_id: str, model: str) -> ModelState:
        c = T.model_states.c
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(c.high_water_mark, c.last_transfer_id, c.columns).where(
                    c.connection_id == connection_id, c.model == model
                )
            ).first()
        if row is None:
            return ModelState(high_water_mark=None, last_transfer_id=None, columns=None)
        return ModelState(**row._mapping)

    def pending(self, connection_id: str, model: str) -> list[TransferRecord]:
        """Transfers not yet succeeded, oldest first: they must finish in this order, since
        each one's window starts where the previous one's ends."""
        c = T.transfers.c
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(T.transfers)
                .where(
                    c.connection_id == connection_id,
                    c.model == model,
                    c.status.in_(("planned", "running", "failed")),
                )
                .order_by(c.created_at, c.started_at)
            )
            return [_transfer(r) for r in rows]

    def unfinished(self, connection_id: str, model: str) -> TransferRecord | None:
        """The oldest transfer a retry must finish first."""
        pending = self.pending(connection_id, model)
        return pending[0] if pending else None

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
        tid = new_id()
        with self.engine.begin() as db:
            db.execute(
                T.transfers.insert().values(
                    id=tid,
                    connection_id=connection_id,
                    model=model,
                    type=kind.value,
                    status="planned",
                    started_at=started_at,
                    window_low=window.low,
                    window_high=window.high,
                    rows=0,
                    bytes=0,
                    files=0,
                    attempts=0,
                    created_at=now,
                )
            )
        return self.get(tid)

    def last_started_at(self, connection_id: str, model: str) -> datetime | None:
        c = T.transfers.c
        with self.engine.connect() as db:
            return db.execute(
                sa.select(sa.func.max(c.started_at)).where(
                    c.connection_id == connection_id, c.model == model
                )
            ).scalar()

    def get(self, transfer_id: str) -> TransferRecord:
        with self.engine.connect() as db:
            row = db.execute(sa.select(T.transfers).where(T.transfers.c.id == transfer_id)).first()
        if row is None:
            raise NotFoundError(f"no transfer {transfer_id!r}")
        return _transfer(row)

    def list(self, connection_id: str, *, limit: int = 50, offset: int = 0) -> list[TransferRecord]:
        c = T.transfers.c
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(T.transfers)
                .where(c.connection_id == connection_id)
                .order_by(c.created_at.desc(), c.id)
                .limit(limit)
                .offset(offset)
            )
            return [_transfer(r) for r in rows]

    def start_attempt(self, transfer_id: str) -> int:
        c = T.transfers.c
        with self.engine.begin() as db:
            db.execute(
                T.transfers.update()
                .where(c.id == transfer_id)
                .values(status="running", attempts=c.attempts + 1, error=None)
            )
            return int(db.execute(sa.select(c.attempts).where(c.id == transfer_id)).scalar_one())

    def files(self, transfer_id: str) -> list[FileRecord]:
        c = T.transfer_files.c
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(c.file_part, c.key, c.state, c.upload_id, c.rows, c.bytes, c.sha256)
                .where(c.transfer_id == transfer_id)
                .order_by(c.file_part)
            )
            return [FileRecord(**r._mapping) for r in rows]

    def file_started(self, transfer_id: str, file_part: int, key: str, attempt: int) -> None:
        """Recorded before the first byte is sent: the file may exist from now on."""
        c = T.transfer_files.c
        with self.engine.begin() as db:
            updated = db.execute(
                T.transfer_files.update()
                .where(c.transfer_id == transfer_id, c.file_part == file_part)
                .values(
                    state="started", upload_id=None, rows=0, bytes=0, sha256=None, attempt=attempt
                )
            ).rowcount
            if not updated:
                db.execute(
                    T.transfer_files.insert().values(
                        transfer_id=transfer_id,
                        file_part=file_part,
                        key=key,
                        state="started",
                        rows=0,
                        bytes=0,
                        attempt=attempt,
                    )
                )

    def file_upload_id(self, transfer_id: str, file_part: int, upload_id: str) -> None:
        c = T.transfer_files.c
        with self.engine.begin() as db:
            db.execute(
                T.transfer_files.update()
                .where(c.transfer_id == transfer_id, c.file_part == file_part)
                .values(upload_id=upload_id)
            )

    def file_committed(
        self, transfer_id: str, file_part: int, *, rows: int, size: int, sha256: str
    ) -> None:
        c = T.transfer_files.c
        with self.engine.begin() as db:
            db.execute(
                T.transfer_files.update()
                .where(c.transfer_id == transfer_id, c.file_part == file_part)
                .values(state="committed", upload_id=None, rows=rows, bytes=size, sha256=sha256)
            )

    def file_voided(self, transfer_id: str, file_part: int) -> None:
        c = T.transfer_files.c
        with self.engine.begin() as db:
            db.execute(
                T.transfer_files.update()
                .where(c.transfer_id == transfer_id, c.file_part == file_part)
                .values(state="void", upload_id=None, rows=0, bytes=0, sha256=None)
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
            c.status.in_(("planned", "running", "failed")),
            c.created_at >= record.created_at,
        )
        with self.engine.begin() as db:
            db.execute(
                T.transfers.update()
                .where(tail, c.status == "planned", c.attempts == 0)
                .values(status="cancelled", finished_at=now, error="cancelled before it started")
            )
            db.execute(T.transfers.update().where(tail).values(cancel_requested=True))
        return self.get(transfer_id)

    def cancel_requested(self, transfer_id: str) -> bool:
        c = T.transfers.c
        with self.engine.connect() as db:
            return bool(
                db.execute(sa.select(c.cancel_requested).where(c.id == transfer_id)).scalar()
            )

    def cancelled(self, transfer_id: str, *, now: datetime) -> None:
        with self.engine.begin() as db:
            db.execute(
                T.transfers.update()
                .where(T.transfers.c.id == transfer_id)
                .values(
                    status="cancelled", finished_at=now, error="cancelled; its files were removed"
                )
            )

    def counts_by_status(self) -> dict[str, int]:
        c = T.transfers.c
        with self.engine.connect() as db:
            rows = db.execute(sa.select(c.status, sa.func.count()).group_by(c.status))
            return {status: int(n) for status, n in rows}

    def fail(self, transfer_id: str, error: str, *, now: datetime) -> None:
        with self.engine.begin() as db:
            db.execute(
                T.transfers.update()
                .where(T.transfers.c.id == transfer_id)
                .values(status="failed", error=error[:4000], finished_at=now)
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
    ) -> None:
        """One transaction: the transfer succeeds and the high-water mark advances together."""
        c = T.model_states.c
        with self.engine.begin() as db:
            done = db.execute(
                T.transfers.update()
                .where(T.transfers.c.id == record.id, T.transfers.c.status == "running")
                .values(
                    status="succeeded",
                    rows=rows,
                    bytes=size,
                    files=files,
                    error=None,
                    manifest_key=manifest_key,
                    finished_at=now,
                )
            ).rowcount
            if done != 1:
                raise ConflictError(f"transfer {record.id} is no longer running; not committed")
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
