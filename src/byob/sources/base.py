"""The source port: describe tables and queries, check they can be read, count rows, tell
the time, and stream a tenant's rows in a window."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime

import pyarrow as pa

from byob.domain.models import ModelSpec, NullCursor, ResolvedModel
from byob.domain.types import ColumnType
from byob.domain.windows import Window
from byob.errors import SourceError

SourceColumn = tuple[str, ColumnType, bool]  # name, type, nullable


class Source(ABC):
    """A database holding every tenant's rows."""

    @abstractmethod
    def columns(self, table: str) -> list[SourceColumn]:
        """The table's columns in order; empty when the table does not exist."""

    @abstractmethod
    def model_columns(self, spec: ModelSpec) -> list[SourceColumn]:
        """The columns a model reads: its table's, or those its query returns."""

    @abstractmethod
    def check_access(self, model: ResolvedModel) -> None:
        """Raise SourceError, naming the grant to give, when the model cannot be read."""

    @abstractmethod
    def count(
        self,
        model: ResolvedModel,
        *,
        tenant: str | None = None,
        null_cursor: bool = False,
        window: Window | None = None,
    ) -> int:
        """Rows of the model (of one tenant; only those whose cursor is NULL; only those a
        read of ``window`` would return)."""

    @abstractmethod
    def now(self) -> datetime:
        """The source's own clock (UTC), which cursor values are written with."""

    @abstractmethod
    def read(self, model: ResolvedModel, tenant: str, window: Window) -> Iterator[pa.RecordBatch]:
        """Stream the tenant's rows with ``window.low < cursor <= window.high`` (and, in a
        backfill of a model whose NULL cursors go to backfills, those), columns in the model's
        order. Batches are not yet cast to the model's schema."""

    def read_members(
        self, model: ResolvedModel, members: Sequence[tuple[str, Window]]
    ) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """Stream several tenants' windows of one model as one read: each batch comes with the
        index in ``members`` of the member every row belongs to (a tenant listed twice gets its
        rows twice, once per member). Rows are those `read` gives each member, in no
        particular order across members. This default reads the members one after another;
        a source that can, scans the table once for all of them."""
        for index, (tenant, window) in enumerate(members):
            for batch in self.read(model, tenant, window):
                yield batch, pa.repeat(pa.scalar(index, pa.int32()), batch.num_rows)

    def read_deleted(
        self, model: ResolvedModel, tenant: str, window: Window
    ) -> Iterator[pa.RecordBatch]:
        """Stream the tenant's hard-deleted keys of a ``capture_deletes`` model whose deletion
        time falls in the window: its key columns, tenant column and cursor column (the
        deletion time), by their delivered names."""
        raise SourceError(
            f"model {model.name!r}: capture_deletes needs a PostgreSQL source (byob's trigger "
            "records the deleted keys there)",
            field="capture_deletes",
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL (PostgreSQL and SQLite agree on double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str) -> str:
    """Quote a possibly schema-qualified table name ``schema.table``."""
    return ".".join(quote_ident(part) for part in name.split("."))


def relation(spec: ModelSpec) -> str:
    """What a model selects from: its table, or its query as a subquery."""
    return quote_table(spec.table) if spec.table else f"({spec.query}) AS byob_q"


def window_condition(model: ResolvedModel, window: Window, high: str, low: str) -> str:
    """The cursor's condition for a window (``high``/``low`` are the bound values' SQL)."""
    cursor = quote_ident(model.spec.cursor_column)
    condition = f"{cursor} <= {high}"
    if window.low is not None:
        return f"{condition} AND {cursor} > {low}"
    if model.spec.on_null_cursor is NullCursor.BACKFILL_ONLY:
        return f"({condition} OR {cursor} IS NULL)"
    return condition


def count_sql(
    model: ResolvedModel, *, tenant: str | None, null_cursor: bool, window: str | None = None
) -> str:
    """Count a model's rows: of a tenant (``tenant`` is the bound value's SQL), with a NULL
    cursor, in a window (``window`` is its condition, from ``window_condition``)."""
    spec = model.spec
    where = []
    if tenant is not None:
        where.append(f"{quote_ident(spec.tenant_column)} = {tenant}")
    if null_cursor:
        where.append(f"{quote_ident(spec.cursor_column)} IS NULL")
    if window is not None:
        where.append(window)
    sql = f"SELECT count(*) AS n FROM {relation(spec)}"
    return sql + (" WHERE " + " AND ".join(where) if where else "")
