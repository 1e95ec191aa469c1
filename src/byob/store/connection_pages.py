"""Pages of the connections list, each in one query: the page's connections with their latest
validation and latest transfer joined in, and the size of the whole list, however deep the
page and however many connections there are (keyset pagination, see `domain.paging`).

The list is what operators load most, so its statement is built once per shape (filtered by
tenant or not, from a cursor or not, which way) with bound parameters, and its rows are cut
into a connection, a validation and a transfer by column position."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from byob.domain.connections import Connection, Validation
from byob.domain.paging import Cursor, Page
from byob.domain.transfers import TransferRecord
from byob.store import tables as T
from byob.store.connections import _VALIDATION_COLUMNS, connection_from_fields, field_name
from byob.store.keyset import Keyset, assemble
from byob.store.repository import Repository
from byob.store.transfers import _transfer_of

_CONNECTION = [col.name for col in T.connections.c if col.name != "secret_sealed"]
_CONNECTION_FIELDS = [field_name(column) for column in _CONNECTION]
_TRANSFER = [col.name for col in T.transfers.c]
# Positions in a row: the connection, then the page's extras, the validation, the transfer.
_EXTRAS = ("latest_validation", "latest_transfer", "total")
_V_AT = len(_CONNECTION) + len(_EXTRAS)
_T_AT = _V_AT + len(_VALIDATION_COLUMNS)
_TOTAL_AT = len(_CONNECTION) + 2


@dataclass(frozen=True)
class Listed:
    connection: Connection
    validation: Validation | None  # the latest
    last_transfer: TransferRecord | None


class ConnectionPages(Repository):
    def page(
        self,
        *,
        tenant: str | None = None,
        after: Cursor | None = None,
        before: Cursor | None = None,
        limit: int = 50,
    ) -> Page[Listed]:
        """Oldest first. ``after`` a cursor: the page following it; ``before`` one: the page
        preceding it; neither: the first page."""
        backwards = before is not None
        edge = before if backwards else after
        params: dict[str, Any] = {"limit": limit + 1}  # one more tells whether it goes on
        if tenant is not None:
            params["tenant"] = tenant
        if edge is not None:
            params |= {"edge_at": edge.created_at, "edge_id": edge.id}
        query = _statement(tenant is not None, edge is not None, backwards)
        with self.reading() as db:
            rows = self._read_rows(db, query, params)
            if rows:
                count = int(rows[0][_TOTAL_AT])
            else:  # an empty page: the count did not come along
                where = [] if tenant is None else [T.connections.c.tenant == tenant]
                total = sa.select(sa.func.count()).select_from(T.connections).where(*where)
                count = int(db.execute(total).scalar_one())
        return assemble(
            [_listed(r) for r in rows],
            limit=limit,
            total=count,
            backwards=backwards,
            after_given=after is not None,
            cursor_of=lambda x: Cursor(created_at=x.connection.created_at, id=x.connection.id),
        )

    def one(self, connection_id: str) -> Listed | None:
        """One connection as the list shows it, in the list's one query."""
        query = _statement(False, False, False, by_id=True)
        with self.reading() as db:
            rows = self._read_rows(db, query, {"id": connection_id, "limit": 1})
        return _listed(rows[0]) if rows else None


@functools.cache
def _statement(
    by_tenant: bool, from_edge: bool, backwards: bool, *, by_id: bool = False
) -> sa.Select[Any]:
    c, v, t = T.connections.c, T.validations.c, T.transfers.c
    keyset = Keyset(c.created_at, c.id, oldest_first=True)
    where = [c.tenant == sa.bindparam("tenant")] if by_tenant else []
    if by_id:
        where.append(c.id == sa.bindparam("id"))
    total = sa.select(sa.func.count()).select_from(T.connections).where(*where)
    if from_edge:
        edge_at = sa.bindparam("edge_at", type_=c.created_at.type)
        edge_id = sa.bindparam("edge_id", type_=c.id.type)
        where.append(keyset.beyond(edge_at, edge_id, backwards=backwards))
    page = (
        sa.select(
            *(c[name] for name in _CONNECTION),
            sa.select(sa.func.max(v.id))
            .where(v.connection_id == c.id)
            .scalar_subquery()
            .label("latest_validation"),
            sa.select(t.id)
            .where(t.connection_id == c.id)
            .order_by(t.created_at.desc(), t.id.desc())
            .limit(1)
            .scalar_subquery()
            .label("latest_transfer"),
            total.scalar_subquery().label("total"),
        )
        .where(*where)
        .order_by(*keyset.order(backwards=backwards))
        .limit(sa.bindparam("limit"))
        .subquery("page")
    )
    return (
        sa.select(page, *(v[k] for k in _VALIDATION_COLUMNS), *(t[name] for name in _TRANSFER))
        .outerjoin(T.validations, v.id == page.c.latest_validation)
        .outerjoin(T.transfers, t.id == page.c.latest_transfer)
        .order_by(
            *Keyset(page.c.created_at, page.c.id, oldest_first=True).order(backwards=backwards)
        )
    )


def _listed(row: Any) -> Listed:
    validation = row[_V_AT:_T_AT]
    transfer = row[_T_AT:]
    return Listed(
        connection=connection_from_fields(dict(zip(_CONNECTION_FIELDS, row, strict=False))),
        validation=(
            Validation(**dict(zip(_VALIDATION_COLUMNS, validation, strict=True)))
            if validation[0] is not None
            else None
        ),
        last_transfer=(
            _transfer_of(dict(zip(_TRANSFER, transfer, strict=True)))
            if transfer[0] is not None
            else None
        ),
    )
