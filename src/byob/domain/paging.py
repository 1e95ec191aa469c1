"""Keyset pagination: a page ends at a row, and the next page starts strictly after it.

A cursor names that row by its sort key (creation time, then ID), so a page stays correct
while rows are added or removed elsewhere in the list, and costs the same deep in the list as
at its start (no OFFSET to skip). On the wire it is opaque: URL-safe base64 of the key."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from byob.errors import InvalidFieldError

T = TypeVar("T")
_ID = re.compile(r"[0-9a-f]{32}")  # what `store.repository.new_id` makes


@dataclass(frozen=True, order=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.created_at.astimezone(UTC).isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, field: str) -> Cursor:
        """The cursor in ``token``; a token byob did not hand out is refused, naming ``field``."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, _, ident = raw.partition("|")
            parsed = datetime.fromisoformat(when)
            # In UTC here: a forged time at either end of the calendar cannot be moved there.
            created_at = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            created_at, ident = None, ""
        if created_at is None or not _ID.fullmatch(ident):
            raise InvalidFieldError(
                f"{field} is not a page cursor byob handed out: use the one from the previous "
                "page's links, or leave it out for the first page",
                field=field,
            )
        return cls(created_at=created_at, id=ident)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with the cursors of its neighbours (None at either end)."""

    items: list[T]
    total: int  # in the whole list (with its filter), not on this page
    next: str | None  # cursor: the page after this one starts after it
    previous: str | None  # cursor: the page before this one ends before it


EVERY_PAGE = 500  # rows a page when a whole list is read (`every`)


def every(read: Callable[[str | None, int], Page[T]]) -> list[T]:
    """Every item of a list, a page (one query) at a time: ``read(after, limit)``."""
    found: list[T] = []
    after = None
    while True:
        page = read(after, EVERY_PAGE)
        found += page.items
        if page.next is None:
            return found
        after = page.next


def cursors(after: str | None, before: str | None) -> tuple[Cursor | None, Cursor | None]:
    """The ``after`` and ``before`` cursors of a list request (at most one of them)."""
    if after and before:
        raise InvalidFieldError("give after or before, not both", field="before")
    return (
        Cursor.decode(after, field="after") if after else None,
        Cursor.decode(before, field="before") if before else None,
    )
