"""The base of every repository: a bind that is an engine (each call commits by itself) or a
connection inside an open transaction (`StateStore.atomic`), and new record IDs."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from byob.errors import NotFoundError

# An engine (each call is its own transaction) or a connection inside an open transaction.
Bind = sa.Engine | sa.Connection


def new_id() -> str:
    return uuid.uuid4().hex


Record = TypeVar("Record")


@contextmanager
def deleted_meanwhile() -> Iterator[None]:
    """A write that refers to a row deleted since it was read (a connection deleted while it
    was being validated or transferred) fails its foreign key: say that, as the thing not
    being there, instead of the driver's SQL and parameters."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        if not _is_foreign_key(exc):
            raise
        raise NotFoundError(
            "what this refers to was deleted meanwhile (a connection deleted while it was in "
            "use, most likely); nothing of it was saved"
        ) from exc


def _is_foreign_key(exc: sa.exc.IntegrityError) -> bool:
    """SQLite says so in its message; PostgreSQL with SQLSTATE 23503."""
    original = exc.orig
    return getattr(original, "sqlstate", None) == "23503" or "FOREIGN KEY constraint failed" in str(
        original
    )


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
        with deleted_meanwhile():
            if isinstance(self.bind, sa.Connection):
                yield self.bind
            else:
                with self.bind.begin() as db:
                    yield db

    def _read_rows(
        self, db: sa.Connection, query: sa.Select[Any], params: dict[str, Any]
    ) -> Sequence[Any]:
        """The rows of a read the server runs on every request (an API key, a page of the
        connections list), as tuples in the statement's column order. Read on their own (no
        open transaction) from PostgreSQL, straight from psycopg's cursor with the statement
        compiled once: SQLAlchemy's execution and result layers cost a quarter of a list
        page's query in the server's CPU (51 rows: 1.2 ms, 0.9 without) and of a key's lookup
        (0.26 ms, 0.19 without), and do nothing to such rows (the sessions run in UTC, psycopg
        loads JSON) but wrap them. Values are bound as SQLAlchemy binds them. Any error is
        left to SQLAlchemy: the statement is run again its way, which fails as any query
        would (a lost connection invalidates the pool). An engine something listens to
        statements on (tracing, tests counting queries) sees them all: they take SQLAlchemy's
        way, as they do in a transaction and on SQLite."""
        dialect = db.dialect
        if (
            not isinstance(self.bind, sa.Engine)
            or dialect.driver != "psycopg"
            or db.dispatch.before_cursor_execute
            or db.dispatch.after_cursor_execute
        ):
            return db.execute(query, params).all()
        import psycopg  # loaded already on this path; imported here, a SQLite store never pays it

        sql, own, processors = _compiled(query, dialect)
        bound = own | {k: processors[k](v) if k in processors else v for k, v in params.items()}
        try:
            with db.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(sql, bound)
                rows: list[Any] = cursor.fetchall()
                return rows
        except psycopg.Error:
            return db.execute(query, params).all()

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


@functools.lru_cache(maxsize=256)  # a few statements for each engine's dialect
def _compiled(
    query: sa.Select[Any], dialect: sa.Dialect
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The statement's SQL for ``dialect``, the values it binds itself (e.g. a LIMIT 1) and
    how its parameters' types bind a value (e.g. a UTC datetime: converted to UTC)."""
    compiled = query.compile(dialect=dialect)
    own = {
        name: bind.effective_value
        for bind, name in compiled.bind_names.items()
        if not bind.required
    }
    processors = {
        name: processor
        for bind, name in compiled.bind_names.items()
        if (processor := bind.type.bind_processor(dialect)) is not None
    }
    return str(compiled), own, processors
