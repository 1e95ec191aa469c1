"""Record IDs as people type them: the whole ID, or, git-style, any start of it that only one
record's ID has. Lists show IDs shortened, so the short form must be enough to name a record
again."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from byob.errors import ConflictError, NotFoundError

ID_LENGTH = 32  # what `store.repository.new_id` makes: lowercase hexadecimal
MIN_PREFIX = 4  # fewer characters would name too many records to be of use
SHOWN = 3  # candidates an ambiguous start names
SHORT = 12  # how long lists show an ID

# Hexadecimal only: a start that passes can hold no `%` or `_` to act as a wildcard in LIKE.
_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},{ID_LENGTH}}}")

# Finds (in ID order) at most ``limit`` IDs that start with the given text.
StartingWith = Callable[[str, int], Sequence[str]]


def short(record_id: str) -> str:
    """An ID as lists show it."""
    return record_id[:SHORT]


def prefix_of(ref: str) -> str | None:
    """``ref`` as the start of an ID (lowercased), or None when it cannot be one: shorter
    than `MIN_PREFIX`, longer than an ID, or not hexadecimal."""
    text = ref.lower()
    return text if _PREFIX.fullmatch(text) else None


def one_of(kind: str, prefix: str, found: Sequence[str]) -> str:
    """The one ID of ``found`` (the IDs starting with ``prefix``, up to ``SHOWN + 1``);
    none is not found, several is ambiguous and names a few."""
    if not found:
        raise NotFoundError(f"no {kind} has an ID starting with {prefix!r}")
    if len(found) > 1:
        named = ", ".join(found[:SHOWN]) + (" and more" if len(found) > SHOWN else "")
        raise ConflictError(
            f"more than one {kind} has an ID starting with {prefix!r} ({named}); "
            "give more of its characters"
        )
    return found[0]


def resolve(kind: str, ref: str, starting_with: StartingWith) -> str:
    """The ID that ``ref`` names: itself when it is a whole ID (the caller's lookup says
    whether it exists), else the one ID that starts with it."""
    prefix = prefix_of(ref)
    if prefix is None:
        raise NotFoundError(
            f"no {kind} {ref!r}: give its ID, or at least its first {MIN_PREFIX} characters"
        )
    if len(prefix) == ID_LENGTH:
        return prefix
    return one_of(kind, prefix, starting_with(prefix, SHOWN + 1))
