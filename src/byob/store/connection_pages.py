"""Pages of the connections list, each in one query: the page's connections with their latest
validation and latest transfer joined in, and the size of the whole list, however deep the
page and however many connections there are (keyset pagination, see `domain.paging`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from byob.domain.connections import Connection, Validation
from byob.domain.paging import Cursor, Page
from byob.domain.transfers import TransferRecord
from byob.store import tables as T
from byob.store.connections import _VALIDATION_COLUMNS, _connection
from byob.store.keyset import Keyset, assemble
from byob.store.repository import Repository
from byob.store.transfers import _transfer

_V, _T = "v_", "t_"  # prefixes of the joined validation's and transfer's columns


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
        c = T.connections.c
        keyset = Keyset(c.created_at, c.id, oldest_first=True)
        backwards = before is not None
        edge = before if backwards else after
        where = [] if tenant is None else [c.tenant == tenant]
        total = sa.select(sa.func.count()).select_from(T.connections).where(*where)
        if edge is not None:
            where.append(keyset.beyond(edge, backwards=backwards))
        order = keyset.order(backwards=backwards)
        v, t = T.validations.c, T.transfers.c
        page = (
            sa.select(
                *(col for col in T.connections.c if col.name != "secret_sealed"),
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
            .order_by(*order)
            .limit(limit + 1)  # one more tells whether the list goes on
            .subquery("page")
        )
        query = (
            sa.select(
                page,
                *(v[k].label(_V + k) for k in _VALIDATION_COLUMNS),
                *(col.label(_T + col.name) for col in T.transfers.c),
            )
            .outerjoin(T.validations, v.id == page.c.latest_validation)
            .outerjoin(T.transfers, t.id == page.c.latest_transfer)
            .order_by(
                *Keyset(page.c.created_at, page.c.id, oldest_first=True).order(backwards=backwards)
            )
        )
        with self.reading() as db:
            rows = [dict(r._mapping) for r in db.execute(query)]
            if not rows and edge is not None:  # past an end: the count did not come along
                count = int(db.execute(total).scalar_one())
            else:
                count = int(rows[0]["total"]) if rows else 0
        return assemble(
            [_listed(r) for r in rows[: limit + 1]],
            limit=limit,
            total=count,
            backwards=backwards,
            after_given=after is not None,
            cursor_of=lambda x: Cursor(created_at=x.connection.created_at, id=x.connection.id),
        )


class _Row:
    """A row's mapping as `_connection` and `_transfer` read it."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


def _listed(row: dict[str, Any]) -> Listed:
    joined = {k: row.pop(k) for k in list(row) if k.startswith((_V, _T))}
    for k in ("latest_validation", "latest_transfer", "total"):
        row.pop(k)
    validation = {k[len(_V) :]: val for k, val in joined.items() if k.startswith(_V)}
    transfer = {k[len(_T) :]: val for k, val in joined.items() if k.startswith(_T)}
    return Listed(
        connection=_connection(_Row(row)),
        validation=Validation(**validation) if validation["connection_id"] else None,
        last_transfer=_transfer(_Row(transfer)) if transfer["id"] else None,
    )
