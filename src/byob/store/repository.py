"""The base of every repository: a bind that is an engine (each call commits by itself) or a
connection inside an open transaction (`StateStore.atomic`), and new record IDs."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

# An engine (each call is its own transaction) or a connection inside an open transaction.
Bind = sa.Engine | sa.Connection


def new_id() -> str:
    return uuid.uuid4().hex


Record = TypeVar("Record")


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def restored(cls: type[Record], fields: dict[str, Any]) -> Record:
    """A frozen dataclass from its stored fields (every one, as the row read back holds them),
    without running its ``__init__``, which sets each field through ``object.__setattr__``: for
    a page of the connections list that was a tenth of the server's time. Anything but exactly
    the class's fields takes the ordinary way, and its error."""
    if fields.keys() != _field_names(cls):
        return cls(**fields)
    record: Record = object.__new__(cls)
    record.__dict__.update(fields)
    return record


class Repository:
    """Reads and writes through ``bind``: on an engine each call commits by itself; bound to a
    connection (inside `StateStore.atomic`) calls join the caller's transaction."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind

    def _ids_starting_with(self, table: sa.Table, prefix: str, limit: int) -> list[str]:
        """IDs of ``table`` that start with ``prefix``, in order, at most ``limit``: `LIKE
        :prefix || '%'` with the prefix escaped, so a `%` or `_` in it matches only itself."""
        column = table.c.id
        query = sa.select(column).where(column.startswith(prefix, autoescape=True))
        with self.reading() as db:
            return [str(i) for i in db.execute(query.order_by(column).limit(limit)).scalars()]

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        if isinstance(self.bind, sa.Connection):
            yield self.bind
        else:
            with self.bind.begin() as db:
                yield db

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        if isinstance(self.bind, sa.Connection):
            yield self.bind
        else:
            with self.bind.connect() as db:
                # Reads need no transaction of their own: in PostgreSQL's READ COMMITTED each
                # statement sees its own snapshot either way, and autocommit spares the BEGIN
                # and ROLLBACK round trips a read would otherwise cost.
                yield db.execution_options(isolation_level="AUTOCOMMIT")
