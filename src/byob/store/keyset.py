"""Keyset pagination over (created_at, id), in either direction of a list ordered either way:
the WHERE clause that starts a page beyond a cursor, the ORDER BY, and the page's neighbours.
See `domain.paging` for the cursor itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from byob.domain.paging import Cursor, Page

T = TypeVar("T")


class Keyset:
    def __init__(self, created_at: Any, id_: Any, *, oldest_first: bool) -> None:
        self.created_at, self.id, self.oldest_first = created_at, id_, oldest_first

    def beyond(self, created_at: Any, id_: Any, *, backwards: bool) -> sa.ColumnElement[bool]:
        """Rows after the one keyed (``created_at``, ``id_``) in the list's order (before it,
        ``backwards``). The bare bound on created_at lets the index range start there, so a
        page deep in the list reads as few rows as the first."""
        later = self.oldest_first != backwards
        created, ident = self.created_at, self.id
        if later:
            tie = sa.and_(created == created_at, ident > id_)
            return sa.and_(created >= created_at, sa.or_(created > created_at, tie))
        tie = sa.and_(created == created_at, ident < id_)
        return sa.and_(created <= created_at, sa.or_(created < created_at, tie))

    def order(self, *, backwards: bool) -> tuple[Any, Any]:
        """The list's order, reversed when reading ``backwards`` from a cursor."""
        if self.oldest_first != backwards:
            return self.created_at.asc(), self.id.asc()
        return self.created_at.desc(), self.id.desc()


def assemble(
    rows: list[T],
    *,
    limit: int,
    total: int,
    backwards: bool,
    after_given: bool,
    cursor_of: Callable[[T], Cursor],
) -> Page[T]:
    """The page from up to ``limit + 1`` rows read in query order (the extra one says the
    list goes on that way)."""
    more = len(rows) > limit
    items = rows[:limit]
    if backwards:
        items.reverse()
    # Backwards, the rows left out lie before this page and the cursor's row after it.
    has_next, has_previous = (True, more) if backwards else (more, after_given)
    return Page(
        items=items,
        total=total,
        next=cursor_of(items[-1]).encode() if items and has_next else None,
        previous=cursor_of(items[0]).encode() if items and has_previous else None,
    )


class Keyed(Protocol):
    """A row made into a record that still carries its sort key."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


K = TypeVar("K", bound=Keyed)


def newest_first(
    db: sa.Connection,
    table: sa.Table,
    columns: list[sa.ColumnElement[Any]],
    where: list[sa.ColumnElement[bool]],
    *,
    after: Cursor | None,
    before: Cursor | None,
    limit: int,
    item: Callable[[dict[str, Any]], K],
) -> Page[K]:
    """One page of ``table`` (keyed by its created_at and id), newest first, in one query;
    ``item`` makes each row's mapping (``total`` removed) into what the page holds."""
    keyset = Keyset(table.c.created_at, table.c.id, oldest_first=False)
    backwards = before is not None
    edge = before if backwards else after
    total = sa.select(sa.func.count()).select_from(table).where(*where)
    if edge is not None:
        where = [*where, keyset.beyond(edge.created_at, edge.id, backwards=backwards)]
    query = (
        sa.select(*columns, total.scalar_subquery().label("total"))
        .where(*where)
        .order_by(*keyset.order(backwards=backwards))
        .limit(limit + 1)
    )
    rows = [dict(r._mapping) for r in db.execute(query)]
    count = int(rows[0]["total"]) if rows else int(db.execute(total).scalar_one())
    for row in rows:
        del row["total"]
    return assemble(
        [item(r) for r in rows],
        limit=limit,
        total=count,
        backwards=backwards,
        after_given=after is not None,
        cursor_of=lambda x: Cursor(created_at=x.created_at, id=x.id),
    )
