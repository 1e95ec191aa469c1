"""Connections and their validations. Every query is parameterised; tenants never mix."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.domain.connections import (
    AuthKind,
    Connection,
    ConnectionType,
    Direction,
    Status,
    Validation,
)
from byob.domain.schedules import FREQUENCIES, SlotClaim, slot_start
from byob.errors import ConflictError, NotFoundError
from byob.store import tables as T
from byob.store.repository import Repository, new_id, restored

_RENAMED = {"schema": "schema_name", "database": "database_name"}


def connection_row(conn: Connection) -> dict[str, Any]:
    row = {_RENAMED.get(f.name, f.name): getattr(conn, f.name) for f in dataclasses.fields(conn)}
    row["models"] = list(conn.models) if conn.models is not None else None
    return {k: (v.value if hasattr(v, "value") else v) for k, v in row.items()}


def _connection(row: Any) -> Connection:
    return connection_of(dict(row._mapping))


def connection_of(m: dict[str, Any]) -> Connection:
    """A connection from its row's columns (the sealed secret, if there, left out)."""
    m.pop("secret_sealed", None)
    for field_name, column in _RENAMED.items():
        m[field_name] = m.pop(column)
    return connection_from_fields(m)


# Stored values to members by dictionary: calling the enum costs ~2 µs a value, and a page of
# the connections list decodes three a row.
_TYPES = {member.value: member for member in ConnectionType}
_STATUSES = {member.value: member for member in Status}
_AUTHS = {member.value: member for member in AuthKind}
_DIRECTIONS = {member.value: member for member in Direction}


# A connection by its ID, as each API request for one reads it: built once, not per request.
_BY_ID = sa.select(T.connections).where(T.connections.c.id == sa.bindparam("ref"))


def connection_from_fields(m: dict[str, Any]) -> Connection:
    """A connection from its fields by name, its enums still the stored values."""
    m["type"] = _TYPES[m["type"]]
    m["status"] = _STATUSES[m["status"]]
    m["auth"] = _AUTHS[m["auth"]]
    m["direction"] = _DIRECTIONS[m["direction"]]
    if m["models"] is not None:
        m["models"] = tuple(m["models"])
    return restored(Connection, m)


def field_name(column: str) -> str:
    """The connection's field that a column of the connections table holds."""
    return _FIELDS.get(column, column)


_FIELDS = {column: field for field, column in _RENAMED.items()}


@dataclasses.dataclass
class Claimed:
    """What ``claim_slots`` won: the connections, and the records of the claims."""

    won: set[str] = dataclasses.field(default_factory=set)
    records: list[str] = dataclasses.field(default_factory=list)


def _grouped(claims: Iterable[SlotClaim]) -> dict[tuple[datetime | None, datetime], list[str]]:
    groups: dict[tuple[datetime | None, datetime], list[str]] = {}
    for claim in claims:
        groups.setdefault((claim.previous, claim.slot), []).append(claim.connection_id)
    return groups


class Connections(Repository):
    def add(self, conn: Connection, *, secret_sealed: str | None = None) -> Connection:
        try:
            with self.writing() as db:
                db.execute(
                    T.connections.insert().values(
                        **connection_row(conn), secret_sealed=secret_sealed
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"tenant {conn.tenant!r} already has a connection named {conn.name!r}; choose "
                "another name",
                field="name",
            ) from exc
        return conn

    def save(self, conn: Connection, *, secret_sealed: str | None = None) -> Connection:
        """Save; ``secret_sealed`` replaces the sealed secret ("" erases it), None keeps it."""
        values = connection_row(conn)
        if secret_sealed is not None:
            values["secret_sealed"] = secret_sealed or None
        try:
            with self.writing() as db:
                db.execute(
                    T.connections.update().where(T.connections.c.id == conn.id).values(**values)
                )
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"tenant {conn.tenant!r} already has a connection named {conn.name!r}", field="name"
            ) from exc
        return conn

    def delete(self, connection_id: str) -> None:
        with self.writing() as db:
            db.execute(T.connections.delete().where(T.connections.c.id == connection_id))

    def get(self, ref: str) -> Connection:
        """A connection by ID, by name (when one tenant alone has that name), or by
        ``tenant/name``."""
        c = T.connections.c
        with self.reading() as db:
            # An ID is exact and wins; names are looked up only when no ID matches.
            rows = db.execute(_BY_ID, {"ref": ref}).all()
            if not rows:
                rows = db.execute(sa.select(T.connections).where(c.name == ref).limit(3)).all()
            if not rows and "/" in ref:
                tenant, name = ref.rsplit("/", 1)  # names hold no '/'; tenants may
                rows = db.execute(
                    sa.select(T.connections).where(c.tenant == tenant, c.name == name)
                ).all()
        if not rows:
            raise NotFoundError(f"no connection named {ref!r}", field="name")
        if len(rows) > 1:
            tenants = ", ".join(repr(f"{r.tenant}/{r.name}") for r in rows[:2])
            raise ConflictError(
                f"more than one tenant has a connection named {ref!r}: give its ID or "
                f"tenant/name (e.g. {tenants})",
                field="name",
            )
        return _connection(rows[0])

    def ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        return self._ids_starting_with(T.connections, prefix, limit)

    def names(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        c = T.connections.c
        with self.reading() as db:
            return {r.id: r.name for r in db.execute(sa.select(c.id, c.name).where(c.id.in_(ids)))}

    def all(self) -> list[Connection]:
        """Every connection, oldest first."""
        query = sa.select(T.connections).order_by(T.connections.c.created_at, T.connections.c.id)
        with self.reading() as db:
            return [_connection(r) for r in db.execute(query)]

    def schedulable(
        self, now: datetime, *, after: str = "", limit: int | None = None
    ) -> list[Connection]:
        """Active, healthy connections whose current schedule slot was not dispatched, in ID
        order from after ``after`` (a keyset page of at most ``limit``)."""
        c = T.connections.c
        per_frequency = [
            sa.and_(
                c.frequency_minutes == f,
                sa.or_(c.last_slot.is_(None), c.last_slot < slot_start(f, now)),
            )
            for f in FREQUENCIES
        ]
        query = (
            sa.select(T.connections)
            .where(
                c.status == Status.ACTIVE.value,
                c.failing_check.is_(None),
                sa.or_(*per_frequency),
                c.id > after,
            )
            .order_by(c.id)
            .limit(limit)
        )
        with self.reading() as db:
            return [_connection(r) for r in db.execute(query)]

    def claim_slots(self, claims: Iterable[SlotClaim], *, now: datetime) -> Claimed:
        """Compare-and-set the dispatched slot of each connection: of many schedulers, exactly
        one wins a slot. One UPDATE per (previous, slot) — a handful per page: a slot is its
        frequency's, and a previous slot was one too — each recording, in its transaction,
        what it won in ``slot_claims`` until ``settle_claims``."""
        claimed = Claimed()
        for (previous, slot), ids in _grouped(claims).items():
            c = T.connections.c
            same = c.last_slot.is_(None) if previous is None else c.last_slot == previous
            # Rows locked in ID order, so schedulers claiming overlapping pages wait for one
            # another instead of deadlocking; a loser re-reads the row and finds it claimed.
            locked = sa.select(c.id).where(c.id.in_(ids), same).order_by(c.id).with_for_update()
            with self.writing() as db:
                won = list(
                    db.execute(
                        T.connections.update()
                        .where(c.id.in_(locked.scalar_subquery()), same)
                        .values(last_slot=slot)
                        .returning(c.id)
                    ).scalars()
                )
                if won:
                    record = new_id()
                    db.execute(
                        T.slot_claims.insert().values(id=record, claimed_at=now, connection_ids=won)
                    )
                    claimed.won.update(won)
                    claimed.records.append(record)
        return claimed

    def settle_claims(self, records: Iterable[str]) -> None:
        """The claims recorded as ``records`` were dispatched (or given back): forget them."""
        ids = list(records)
        if ids:
            with self.writing() as db:
                db.execute(T.slot_claims.delete().where(T.slot_claims.c.id.in_(ids)))

    def unsettled_claims(self, *, claimed_before: datetime) -> list[tuple[str, list[str]]]:
        """Claims recorded before ``claimed_before`` and never settled — their scheduler
        stopped in between — oldest first: (record, connection IDs) each."""
        s = T.slot_claims.c
        query = sa.select(s.id, s.connection_ids).where(s.claimed_at < claimed_before)
        with self.reading() as db:
            rows = db.execute(query.order_by(s.claimed_at, s.id)).all()
        return [(record, list(ids)) for record, ids in rows]

    def many(self, ids: Iterable[str]) -> list[Connection]:
        """The connections of these IDs that still exist, in ID order."""
        c = T.connections.c
        query = sa.select(T.connections).where(c.id.in_(list(ids))).order_by(c.id)
        with self.reading() as db:
            return [_connection(r) for r in db.execute(query)]

    def release_slots(self, claims: Iterable[SlotClaim]) -> None:
        """Undo claims whose dispatch failed, so the next tick tries the slots again."""
        c = T.connections.c
        for (previous, slot), ids in _grouped(claims).items():
            with self.writing() as db:
                db.execute(
                    T.connections.update()
                    .where(c.id.in_(ids), c.last_slot == slot)
                    .values(last_slot=previous)
                )

    def mark_failing(self, connection_id: str, *, check: str, message: str, now: datetime) -> None:
        with self.writing() as db:
            db.execute(
                T.connections.update()
                .where(T.connections.c.id == connection_id)
                .values(failing_check=check, failing_message=message[:4000], failing_since=now)
            )

    def clear_failing(self, connection_id: str) -> None:
        with self.writing() as db:
            db.execute(
                T.connections.update()
                .where(T.connections.c.id == connection_id)
                .values(failing_check=None, failing_message=None, failing_since=None)
            )

    def sealed_secret(self, connection_id: str) -> str | None:
        with self.reading() as db:
            value = db.execute(
                sa.select(T.connections.c.secret_sealed).where(T.connections.c.id == connection_id)
            ).scalar()
        return str(value) if value is not None else None

    def sealed_secrets(self) -> list[tuple[str, str]]:
        """(connection ID, sealed secret) of every connection that keeps one."""
        c = T.connections.c
        with self.reading() as db:
            rows = db.execute(sa.select(c.id, c.secret_sealed).where(c.secret_sealed.is_not(None)))
            return [(str(r.id), str(r.secret_sealed)) for r in rows]

    def reseal(self, connection_id: str, sealed: str) -> None:
        with self.writing() as db:
            db.execute(
                T.connections.update()
                .where(T.connections.c.id == connection_id)
                .values(secret_sealed=sealed)
            )

    def counts(self) -> dict[tuple[str, bool], int]:
        """(status, failing) → how many connections."""
        c = T.connections.c
        failing = c.failing_check.is_not(None)
        with self.reading() as db:
            rows = db.execute(
                sa.select(c.status, failing, sa.func.count()).group_by(c.status, failing)
            )
            return {(str(status), bool(is_failing)): int(n) for status, is_failing, n in rows}


_VALIDATION_COLUMNS = ("connection_id", "fingerprint", "passed", "checks", "created_at")


class Validations(Repository):
    def add(self, v: Validation) -> None:
        with self.writing() as db:
            db.execute(T.validations.insert().values(**dataclasses.asdict(v)))

    def latest(self, connection_id: str) -> Validation | None:
        found = self.history(connection_id, limit=1)
        return found[0] if found else None

    def history(self, connection_id: str, *, limit: int = 20) -> list[Validation]:
        """Newest first."""
        c = T.validations.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(*(c[k] for k in _VALIDATION_COLUMNS))
                .where(c.connection_id == connection_id)
                .order_by(c.id.desc())
                .limit(limit)
            )
            return [Validation(**r._mapping) for r in rows]
