"""SQLite, the embedded demo's source. Values are stored dynamically, so the declared column
types are the contract and values are converted to them while reading."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain import types as t
from byob.domain.models import ModelSpec, ResolvedModel
from byob.domain.types import Kind
from byob.domain.windows import Window
from byob.errors import SourceError
from byob.sources.base import (
    Source,
    SourceColumn,
    count_sql,
    quote_ident,
    relation,
    window_condition,
)

# Timestamps are stored as text in SQLite's own format, which sorts as it compares.
TIMESTAMP_TEXT = "%Y-%m-%d %H:%M:%S.%f"
_BATCH_ROWS = 50_000

# How each kind is read out of SQLite before Arrow casts it to the model's type.
_RAW_ARROW = {
    Kind.INT16: pa.int64(),
    Kind.INT32: pa.int64(),
    Kind.INT64: pa.int64(),
    Kind.BOOL: pa.int64(),
    Kind.FLOAT32: pa.float64(),
    Kind.FLOAT64: pa.float64(),
    Kind.BINARY: pa.binary(),
}


class SqliteSource(Source):
    def __init__(self, path: str) -> None:
        self._path = path
        try:
            # Read-only: byob never writes to a source.
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open SQLite source {path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def columns(self, table: str) -> list[SourceColumn]:
        try:
            rows = self._conn.execute(
                'SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (table,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise SourceError(f"cannot describe table {table!r}: {exc}") from exc
        return [
            (name, t.from_sqlite(decl or ""), not (notnull or pk))
            for name, decl, notnull, pk in rows
        ]

    def model_columns(self, spec: ModelSpec) -> list[SourceColumn]:
        if spec.table:
            return self.columns(spec.table)
        # A temporary view describes a query's columns with their declared types (a column
        # computed by an expression has none: it is read as text).
        try:
            self._conn.execute(f"CREATE TEMP VIEW byob_describe AS {spec.query}")
            try:
                return self.columns("byob_describe")
            finally:
                self._conn.execute("DROP VIEW temp.byob_describe")
        except sqlite3.Error as exc:
            raise SourceError(f"model {spec.name!r}: its query failed: {exc}") from exc

    def check_access(self, model: ResolvedModel) -> None:
        select = ", ".join(quote_ident(c.source_name) for c in model.columns)
        try:
            self._conn.execute(f"SELECT {select} FROM {relation(model.spec)} LIMIT 0").fetchall()
        except sqlite3.Error as exc:
            raise SourceError(
                f"model {model.name!r}: reading {model.spec.source} failed: {exc}"
            ) from exc

    def count(
        self,
        model: ResolvedModel,
        *,
        tenant: str | None = None,
        null_cursor: bool = False,
        window: Window | None = None,
    ) -> int:
        params: list[object] = [tenant] if tenant is not None else []
        condition = None
        if window is not None:
            condition = window_condition(model, window, "?", "?")
            params.append(_text(window.high))
            if window.low is not None:
                params.append(_text(window.low))
        sql = count_sql(
            model,
            tenant="?" if tenant is not None else None,
            null_cursor=null_cursor,
            window=condition,
        )
        try:
            return int(self._conn.execute(sql, params).fetchone()[0])
        except sqlite3.Error as exc:
            raise SourceError(f"counting model {model.name!r} failed: {exc}") from exc

    def now(self) -> datetime:
        return datetime.now(UTC)

    def read(self, model: ResolvedModel, tenant: str, window: Window) -> Iterator[pa.RecordBatch]:
        spec = model.spec
        select = ", ".join(_select_expr(c.source_name, c.type) for c in model.columns)
        where = [
            f"{quote_ident(spec.tenant_column)} = ?",
            window_condition(model, window, "?", "?"),
        ]
        params: list[object] = [tenant, _text(window.high)]
        if window.low is not None:
            params.append(_text(window.low))
        sql = f"SELECT {select} FROM {relation(spec)} WHERE {' AND '.join(where)}"
        schema = pa.schema(
            [(c.name, _RAW_ARROW.get(c.type.kind, pa.string())) for c in model.columns]
        )
        try:
            cur = self._conn.execute(sql, params)
            while rows := cur.fetchmany(_BATCH_ROWS):
                columns = list(zip(*rows, strict=True))
                arrays = [
                    _typed(pa.array(col, type=f.type), c.type)
                    for col, f, c in zip(columns, schema, model.columns, strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, names=schema.names)
        except (sqlite3.Error, pa.ArrowException) as exc:
            raise SourceError(f"reading model {model.name!r} failed: {exc}") from exc


def _typed(array: pa.Array, ctype: t.ColumnType) -> pa.Array:
    """Parse SQLite's text timestamps (with or without a zone offset) into Arrow timestamps;
    zone-less text is taken as UTC, as SQLite's own date functions write it."""
    if ctype.kind not in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return array
    try:
        parsed = pc.cast(array, pa.timestamp("us"))
    except pa.ArrowInvalid:
        parsed = pc.cast(array, pa.timestamp("us", tz="UTC"))
        if ctype.kind is Kind.TIMESTAMP:
            return pc.cast(parsed, pa.timestamp("us"))
        return parsed
    if ctype.kind is Kind.TIMESTAMPTZ:
        return pc.cast(parsed, pa.timestamp("us", tz="UTC"))
    return parsed


def _text(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIMESTAMP_TEXT)


def _select_expr(name: str, ctype: t.ColumnType) -> str:
    col = quote_ident(name)
    raw = _RAW_ARROW.get(ctype.kind)
    if raw == pa.int64():
        return f"CAST({col} AS INTEGER)"
    if raw == pa.float64():
        return f"CAST({col} AS REAL)"
    if raw == pa.binary():
        return f"CAST({col} AS BLOB)"
    return f"CAST({col} AS TEXT)"
