"""PostgreSQL through ADBC: rows arrive as Arrow record batches over the binary COPY protocol."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from byob.domain import types as t
from byob.domain.models import Column, ModelSpec, NullCursor, ResolvedModel
from byob.domain.types import Kind
from byob.domain.windows import Window
from byob.errors import SchemaChangeError, SourceError
from byob.sources.base import (
    Source,
    SourceColumn,
    count_sql,
    quote_ident,
    relation,
    window_condition,
)
from byob.sources.postgres_values import (
    NAN_CAST_ERROR,
    NotANumberError,
    is_scaled,
    scaled_decimal,
    scaled_select,
)

_COLUMNS_SQL = """
SELECT a.attname::text AS name,
       format_type(a.atttypid, a.atttypmod) AS type_name,
       (t.typtype = 'e' OR coalesce(et.typtype = 'e', false)) AS is_enum,
       NOT a.attnotnull AS nullable
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# The column a read of several members tags each row with its member's index in.
_MEMBER = "byob_fan_member"

# Read batches of about this many bytes from the driver: large enough to amortise per-batch
# overhead, small enough that a few in flight keep memory bounded.
_BATCH_BYTES_HINT = 4 << 20


class AdbcPostgresSource(Source):
    def __init__(self, url: str, *, decimal_for_unconstrained: int | None = None) -> None:
        dbapi = _adbc_dbapi()
        self._url = url
        self._decimal_for_unconstrained = decimal_for_unconstrained
        self._source_types: dict[str, dict[str, str]] = {}
        try:
            self._conn = dbapi.connect(url)
        except Exception as exc:  # the driver raises its own hierarchy
            raise SourceError(f"cannot connect to the source database: {_clean(exc)}") from exc

    def close(self) -> None:
        self._conn.close()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> pa.Table:
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, parameters=params or None)
                table = cur.fetch_arrow_table()
            self._conn.rollback()  # read-only: end the snapshot so no transaction idles open
            return table
        except Exception as exc:
            self._conn.rollback()
            raise SourceError(f"source query failed: {_clean(exc)}") from exc

    def columns(self, table: str) -> list[SourceColumn]:
        return self._described(table, self._query(_COLUMNS_SQL, (table,)).to_pylist())

    def model_columns(self, spec: ModelSpec) -> list[SourceColumn]:
        if spec.table:
            return self.columns(spec.table)
        # A temporary view, dropped with the transaction, describes the query's columns with
        # their exact types (numeric precision included), as pg_attribute has them.
        try:
            with self._conn.cursor() as cur:
                cur.execute(f"CREATE TEMP VIEW byob_describe AS {spec.query}")
                cur.execute(_COLUMNS_SQL, parameters=("pg_temp.byob_describe",))
                rows = cur.fetch_arrow_table().to_pylist()
        except Exception as exc:
            raise SourceError(f"model {spec.name!r}: its query failed: {_clean(exc)}") from exc
        finally:
            self._conn.rollback()
        return self._described(_types_key(spec), rows)

    def check_access(self, model: ResolvedModel) -> None:
        spec = model.spec
        select = ", ".join(quote_ident(c.source_name) for c in model.columns)
        try:
            self._query(f"SELECT {select} FROM {relation(spec)} LIMIT 0")
        except SourceError as exc:
            if "permission denied" not in exc.message:
                raise
            user = self._query("SELECT current_user::text AS u").column(0)[0].as_py()
            missing = _denied_relation(exc.message) or spec.source
            raise SourceError(
                f"model {model.name!r}: the source user {user!r} cannot read {missing} "
                f"({exc.message.removeprefix('source query failed: ')}); grant it with "
                f"GRANT SELECT ON {missing} TO {quote_ident(user)}"
            ) from None

    def count(
        self,
        model: ResolvedModel,
        *,
        tenant: str | None = None,
        null_cursor: bool = False,
        window: Window | None = None,
    ) -> int:
        params: list[str] = []

        def bind(value: str, sql_type: str) -> str:
            params.append(value)
            return _setting(len(params), sql_type)

        bound = None
        if tenant is not None:
            bound = bind(tenant, self._types(model.spec)[model.spec.tenant_column])
        condition = None
        if window is not None:
            cursor_type = _cursor_type(model)
            high = bind(_bound(window.high, cursor_type), cursor_type)
            low = "" if window.low is None else bind(_bound(window.low, cursor_type), cursor_type)
            condition = window_condition(model, window, high, low)
        sql = count_sql(model, tenant=bound, null_cursor=null_cursor, window=condition)
        try:
            with self._conn.cursor() as cur:
                self._bind(cur, tuple(params))
                cur.execute(sql)
                value = cur.fetch_arrow_table().column(0)[0].as_py()
        except Exception as exc:
            raise SourceError(f"counting model {model.name!r} failed: {_clean(exc)}") from exc
        finally:
            self._conn.rollback()
        return int(value)

    def _types(self, spec: ModelSpec) -> dict[str, str]:
        """The model's source column types as PostgreSQL names them (for casts)."""
        key = _types_key(spec)
        if key not in self._source_types:
            self.model_columns(spec)
        return self._source_types[key]

    @staticmethod
    def _bind(cur: Any, params: tuple[str, ...]) -> None:
        """Bind values as transaction-local settings, read by current_setting('byob.pN'): a
        query without parameters is streamed by the driver over COPY; one with is not."""
        if not params:
            return
        assignments = ", ".join(
            f"set_config('byob.p{i}', ${i}, true)" for i in range(1, len(params) + 1)
        )
        cur.execute(f"SELECT {assignments}", parameters=params)
        cur.fetchall()

    def _described(self, key: str, rows: list[dict[str, Any]]) -> list[SourceColumn]:
        self._source_types[key] = {r["name"]: r["type_name"] for r in rows}
        return [
            (
                r["name"],
                t.from_postgres(
                    r["type_name"],
                    is_enum=r["is_enum"],
                    decimal_for_unconstrained=self._decimal_for_unconstrained,
                ),
                r["nullable"],
            )
            for r in rows
        ]

    def now(self) -> datetime:
        value: datetime = self._query("SELECT clock_timestamp() AS now").column(0)[0].as_py()
        return value.astimezone(UTC)

    def read(self, model: ResolvedModel, tenant: str, window: Window) -> Iterator[pa.RecordBatch]:
        yield from self._stream(
            model, lambda mark_nan: self.select_sql(model, tenant, window, mark_nan=mark_nan)
        )

    def read_members(
        self, model: ResolvedModel, members: Sequence[tuple[str, Window]]
    ) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        # A NaN fails the shared read, whose members then run alone (engine/fanout.py): their
        # own reads name the column, so this one need not read everything again to.
        for batch in self._batches(model, *self.members_sql(model, members)):
            last = batch.num_columns - 1
            yield batch.drop_columns([_MEMBER]), batch.column(last)

    def _stream(
        self, model: ResolvedModel, statement: Callable[[bool], tuple[str, tuple[str, ...]]]
    ) -> Iterator[pa.RecordBatch]:
        """The batches of ``statement(False)``. When PostgreSQL refuses a scaled numeric's NaN
        (see ``postgres_values``), the same rows are read again with NaN marked, so the error
        names the column, as the unchecked read cannot."""
        try:
            yield from self._batches(model, *statement(False))
        except SourceError as exc:
            if NAN_CAST_ERROR not in exc.message:
                raise
            for _ in self._batches(model, *statement(True)):
                pass  # _unscaled raises, naming the column, at the batch holding the NaN
            scaled = ", ".join(repr(c.source_name) for c in model.columns if is_scaled(c.type))
            raise SchemaChangeError(
                f"model {model.name!r}: a NaN in one of the columns {scaled} cannot be written "
                "as a decimal. Declare the column with a wider type, or cast it in the source"
            ) from exc

    def _batches(
        self, model: ResolvedModel, sql: str, params: tuple[str, ...]
    ) -> Iterator[pa.RecordBatch]:
        try:
            cur = self._conn.cursor()
            self._bind(cur, params)
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_BATCH_BYTES_HINT)}
            )
            cur.execute(sql)
            reader = cur.fetch_record_batch()
        except Exception as exc:
            self._conn.rollback()
            raise SourceError(f"reading model {model.name!r} failed: {_clean(exc)}") from exc
        scaled = [(i, c) for i, c in enumerate(model.columns) if is_scaled(c.type)]
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as exc:
                    raise SourceError(
                        f"reading model {model.name!r} failed: {_clean(exc)}"
                    ) from exc
                yield _unscaled(batch, scaled, model) if scaled else batch
        finally:
            cur.close()
            self._conn.rollback()

    def _select_list(self, model: ResolvedModel, *, mark_nan: bool) -> str:
        """The model's columns as the reads select them (see ``_select_expr``)."""
        source_types = self._types(model.spec)
        return ", ".join(
            f"{_select_expr(c.source_name, c.type, source_types.get(c.source_name, ''), mark_nan)}"
            f" AS {quote_ident(c.name)}"
            for c in model.columns
        )

    def select_sql(
        self, model: ResolvedModel, tenant: str, window: Window, *, mark_nan: bool = False
    ) -> tuple[str, tuple[str, ...]]:
        """The SELECT for one tenant's window. Values are never part of the SQL text: they are
        bound as parameters (see ``read``) and referenced as ``current_setting('byob.pN')``.
        ``mark_nan``: see ``postgres_values.scaled_select``."""
        spec = model.spec
        source_types = self._types(spec)
        select = self._select_list(model, mark_nan=mark_nan)
        cursor_type = _cursor_type(model)
        tenant_type = source_types[spec.tenant_column]
        where = [
            f"{quote_ident(spec.tenant_column)} = {_setting(1, tenant_type)}",
            window_condition(model, window, _setting(2, cursor_type), _setting(3, cursor_type)),
        ]
        params: list[str] = [tenant, _bound(window.high, cursor_type)]
        if window.low is not None:
            params.append(_bound(window.low, cursor_type))
        sql = f"SELECT {select} FROM {relation(spec)} WHERE {' AND '.join(where)}"
        return sql, tuple(params)

    def members_sql(
        self, model: ResolvedModel, members: Sequence[tuple[str, Window]]
    ) -> tuple[str, tuple[str, ...]]:
        """One SELECT for several tenants' windows: the table joined to the members (bound as
        one JSON array, read once as a function scan), each row tagged with its member's index.
        Every member's own tenant and window are in the join condition, so a member receives
        exactly what its own `select_sql` would give it; the WHERE clause bounds the scan by
        the union of the windows, so an index on the cursor still narrows it."""
        spec = model.spec
        source_types = self._types(spec)
        select = self._select_list(model, mark_nan=False)
        cursor_type = _cursor_type(model)
        tenant_type = source_types[spec.tenant_column]
        cursor = quote_ident(spec.cursor_column)
        bound = json.dumps(
            [
                {
                    "i": index,
                    "t": tenant,
                    "lo": None if window.low is None else _bound(window.low, cursor_type),
                    "hi": _bound(window.high, cursor_type),
                }
                for index, (tenant, window) in enumerate(members)
            ]
        )
        lows = [w.low for _, w in members if w.low is not None]
        union = Window(
            low=min(lows) if len(lows) == len(members) else None,
            high=max(w.high for _, w in members),
        )
        # The members as a typed table, cast once (MATERIALIZED: inlined, the casts would run
        # for every row the join reads).
        members_cte = (
            "WITH byob_members AS MATERIALIZED (SELECT m.i, "
            f"m.t::{tenant_type} AS t, m.lo::{cursor_type} AS lo, m.hi::{cursor_type} AS hi "
            "FROM jsonb_to_recordset(current_setting('byob.p1')::jsonb) "
            "AS m(i int4, t text, lo text, hi text)) "
        )
        on = f"{quote_ident(spec.tenant_column)} = m.t"
        if any(w != union for _, w in members):  # else the WHERE clause is every member's own
            own_window = f"{cursor} <= m.hi AND (m.lo IS NULL OR {cursor} > m.lo)"
            if spec.on_null_cursor is NullCursor.BACKFILL_ONLY:
                own_window = f"(({own_window}) OR (m.lo IS NULL AND {cursor} IS NULL))"
            on = f"{on} AND {own_window}"
        params: list[str] = [bound, _bound(union.high, cursor_type)]
        if union.low is not None:
            params.append(_bound(union.low, cursor_type))
        where = window_condition(model, union, _setting(2, cursor_type), _setting(3, cursor_type))
        sql = (
            f"{members_cte}SELECT {select}, m.i AS {_MEMBER} FROM {relation(spec)} "
            f"JOIN byob_members AS m ON {on} WHERE {where}"
        )
        return sql, tuple(params)

    def read_deleted(
        self, model: ResolvedModel, tenant: str, window: Window
    ) -> Iterator[pa.RecordBatch]:
        from byob.sources import deleted_rows

        sql = deleted_rows.select_sql(
            model, self._types(model.spec), has_low=window.low is not None, setting=_setting
        )
        params = [model.name, tenant, _bound(window.high, "timestamptz")]
        if window.low is not None:
            params.append(_bound(window.low, "timestamptz"))
        cur = self._conn.cursor()
        try:
            self._bind(cur, tuple(params))
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                yield batch
        except Exception as exc:
            text = _clean(exc)
            raise deleted_rows.missing_table_error(model.name, text) or SourceError(
                f"reading the deleted keys of model {model.name!r} failed: {text}"
            ) from exc
        finally:
            cur.close()
            self._conn.rollback()


def _adbc_dbapi() -> Any:
    """ADBC's DB-API module, imported without polars. adbc_driver_manager registers a polars
    backend whenever polars is importable, and importing polars costs 0.15–0.3 s of every CLI
    start-up; byob reads through pyarrow only. Blocked for this one import, never afterwards."""
    import sys

    if "adbc_driver_postgresql.dbapi" in sys.modules or "polars" in sys.modules:
        import adbc_driver_postgresql.dbapi

        return adbc_driver_postgresql.dbapi
    sys.modules["polars"] = None  # type: ignore[assignment]  # `import polars` now fails
    try:
        import adbc_driver_postgresql.dbapi
    finally:
        del sys.modules["polars"]
    return adbc_driver_postgresql.dbapi


def _setting(number: int, sql_type: str) -> str:
    """Bound value ``number``, read once per statement: a scalar subquery is an InitPlan,
    evaluated once, where a bare current_setting() in a WHERE clause is evaluated for every
    row a sequential scan reads (917 ms against 361 ms for 1.1M rows, EXPLAIN ANALYZE)."""
    return f"(SELECT current_setting('byob.p{number}')::{sql_type})"


def _cursor_type(model: ResolvedModel) -> str:
    return "timestamptz" if model.cursor.type.kind is Kind.TIMESTAMPTZ else "timestamp"


def _bound(value: datetime, cursor_type: str) -> str:
    # Exact to the microsecond; naive timestamp cursors are taken to hold UTC wall-clock time.
    if cursor_type == "timestamptz":
        return value.astimezone(UTC).isoformat()
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


def _select_expr(name: str, ctype: t.ColumnType, source_type: str, mark_nan: bool) -> str:
    col = quote_ident(name)
    if is_scaled(ctype):
        # exact, and no text to print or parse
        return scaled_select(col, ctype, mark_nan=mark_nan)
    if source_type in ("json", "jsonb"):
        return col  # their binary form is the same text ::text prints
    if source_type == "uuid" and ctype.kind is Kind.STRING:
        return col  # 16 bytes, printed as ::text would on the Arrow side (arrow_types.conform)
    if ctype.kind in (Kind.STRING, Kind.DECIMAL):
        # Text is the lossless common form of uuid, json, enums, intervals and numerics;
        # decimals are parsed from it on the Arrow side, which refuses lossy rescaling.
        return f"{col}::text"
    if (
        ctype.kind is Kind.LIST
        and ctype.element is not None
        and ctype.element.kind in (Kind.STRING, Kind.DECIMAL)
    ):
        return f"{col}::text[]"
    if ctype.kind in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        # ±infinity has no Parquet representation; it is delivered as NULL.
        return f"CASE WHEN isfinite({col}) THEN {col} END"
    return col


def _unscaled(
    batch: pa.RecordBatch, scaled: list[tuple[int, Column]], model: ResolvedModel
) -> pa.RecordBatch:
    """The batch with its scaled numerics (see ``postgres_values``) as exact decimals."""
    arrays = batch.columns
    for index, column in scaled:
        try:
            arrays[index] = scaled_decimal(arrays[index], column.type)
        except NotANumberError as exc:
            raise SchemaChangeError(
                f"model {model.name!r}, column {column.source_name!r}: a value cannot be "
                f"written as {column.type} without loss ({exc}). Declare the column with "
                "a wider type, or cast it in the source"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _clean(exc: BaseException) -> str:
    """The driver's message without a URL that could carry a password."""
    import re

    text = str(exc).split("\n")[0]
    return re.sub(r"postgres(?:ql)?://[^\s]+", "postgresql://…", text)


def _types_key(spec: ModelSpec) -> str:
    return spec.table or f"query:{spec.name}"


def _denied_relation(message: str) -> str | None:
    """The relation a "permission denied for table x" error names."""
    import re

    match = re.search(r"permission denied for (?:table|view|relation) (\S+)", message)
    return match.group(1) if match else None
