"""Keyset pagination over (created_at, id), in either direction of a list ordered either way:
the WHERE clause that starts a page beyond a cursor, the ORDER BY, and the page's neighbours.
See `domain.paging` for the cursor itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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
