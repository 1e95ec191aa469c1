"""Where an import's files land: a table in the vendor's PostgreSQL (the models file's
[source] database), loaded with COPY. Each object (connection, key, ETag) is loaded exactly
once: its rows and its row in ``byob_import_ledger`` commit in one transaction, so a kill at
any moment leaves the whole file or none of it, and a second worker taking the same object
waits on the ledger's primary key and then finds it done.

Rows reach COPY as CSV written by Arrow from the typed batches of `engine.import_files`: strings
are always quoted, so an empty string stays an empty string and an unquoted empty field is
NULL; zoned timestamps are written as UTC ending in "Z". Or, for a plain block of a CSV file
whose every value PostgreSQL reads as Arrow did (`engine.import_files.CsvLines`), as the file's
own lines, when every non-text column of the table has exactly the declared type (COPY then
stores the same values: a numeric(18,6) column takes "1.5" as 1.500000, but a text column
would keep "1.5"). The tenant column is the connection's tenant, added here to each line or
batch, never read from the file.

A row the table refuses (a NOT NULL, CHECK or UNIQUE violation, a value too long for
varchar(n)) rejects the file whole, as a row that does not parse does: the same file would fail
the same way at every retry, and stopping the run on it would hold every later file back."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Protocol

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from byob.domain.imports import ImportColumn, ImportFormat, ImportSpec, Loaded, RowProblem, shorten
from byob.domain.types import Kind
from byob.errors import FileRejectedError, SourceError
from byob.sources.base import quote_ident, quote_table

LEDGER = "byob_import_ledger"
# For `byob migrate-imports`, or for the DBA to run: the one table byob writes of its own.
LEDGER_DDL = f"""CREATE TABLE IF NOT EXISTS {LEDGER} (
    connection_id text NOT NULL,
    object_key text NOT NULL,
    etag text NOT NULL,
    import_name text NOT NULL,
    tenant text NOT NULL,
    target_table text NOT NULL,
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, object_key, etag)
)"""
# A non-text column takes the file's own text only when its type is exactly the declared one.
_SAME_TYPE = {
    Kind.INT16: "smallint",
    Kind.INT32: "integer",
    Kind.INT64: "bigint",
    Kind.BOOL: "boolean",
    Kind.DATE: "date",
    Kind.TIMESTAMP: "timestamp without time zone",
    Kind.TIMESTAMPTZ: "timestamp with time zone",
}
# SQLSTATE classes of a row the table refuses: 22 data exception, 23 integrity constraint
# violation. Anything else (the server gone, a lock timeout, a full disk) may pass on retry.
_REFUSED_ROW_CLASSES = frozenset({"22", "23"})
# Where COPY was when it failed: the record it had read (rows, not physical lines: a quoted
# line break stays inside its record), and the column when the error came from its input.
_COPY_CONTEXT = re.compile(r"^COPY .*?, line (\d+)(.*)$", re.MULTILINE)


class AsIsLines(Protocol):
    """Rows COPY may read as the file has them (engine.import_files.CsvLines)."""

    @property
    def batch(self) -> pa.RecordBatch: ...  # the same rows, typed, in declared order

    @property
    def lines(self) -> bytes: ...  # one row a line, each ended by "\n"

    @property
    def names(self) -> tuple[str, ...]: ...  # the columns of a line, in order

    @property
    def delimiter(self) -> str: ...


class PostgresImportTarget:
    def __init__(self, url: str) -> None:
        self.url = url

    def ensure_ledger(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(LEDGER_DDL)

    def check(self, spec: ImportSpec) -> list[str]:
        """What would make this import's loads fail, each with what to do: the table or a
        column missing, a declared type the column cannot take, a privilege not granted, the
        ledger not created."""
        table = spec.table
        with psycopg.connect(self.url) as conn:
            if conn.execute("SELECT to_regclass(%s)", (quote_table(table),)).fetchone()[0] is None:  # type: ignore[index]
                return [
                    f"table {table} does not exist; create it, or fix `table` in the models file"
                ]
            actual: dict[str, str] = {
                str(name): str(kind)
                for name, kind in conn.execute(
                    "SELECT attname, atttypid::regtype::text FROM pg_attribute "
                    "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                    (quote_table(table),),
                )
            }
            problems = []
            for name in (spec.tenant_column, *spec.column_names()):
                if name not in actual:
                    problems.append(
                        f"table {table} has no column {name!r}; add it, or fix the import"
                    )
            for column in spec.columns:
                target = actual.get(column.name)
                if target is None:
                    continue
                fits = conn.execute(
                    # A string column takes any value's text (COPY's I/O conversion).
                    "SELECT %(declared)s::regtype = %(target)s::regtype"
                    " OR %(target)s::regtype IN ('text'::regtype, 'varchar'::regtype,"
                    " 'bpchar'::regtype) OR EXISTS ("
                    " SELECT 1 FROM pg_cast WHERE castsource = %(declared)s::regtype"
                    " AND casttarget = %(target)s::regtype AND castcontext IN ('a', 'i'))",
                    {"declared": column.declared, "target": target},
                ).fetchone()[0]  # type: ignore[index]
                if not fits:
                    problems.append(
                        f"column {column.name!r} of {table} is {target}, but the import declares "
                        f"{column.declared}: declare {target}, or change the column"
                    )
            may = conn.execute(
                "SELECT has_table_privilege(%s, 'INSERT'), to_regclass(%s) IS NOT NULL",
                (quote_table(table), LEDGER),
            ).fetchone()
            if may is not None and not may[0]:
                problems.append(
                    f"the source user may not INSERT into {table}; GRANT INSERT ON {table} TO "
                    "the user of the [source] url"
                )
            if may is not None and not may[1]:
                problems.append(f"{LEDGER} does not exist; run `byob migrate-imports`")
            elif not conn.execute(
                "SELECT has_table_privilege(%(t)s, 'SELECT') AND has_table_privilege(%(t)s, "
                "'INSERT') AND has_table_privilege(%(t)s, 'UPDATE')",
                {"t": LEDGER},
            ).fetchone()[0]:  # type: ignore[index]
                problems.append(
                    f"the source user may not SELECT, INSERT and UPDATE {LEDGER}; grant them"
                )
        return problems

    def imported(self, connection_id: str) -> dict[str, str]:
        """The keys this connection has imported, each with its (newest) ETag."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                f"SELECT object_key, etag FROM {LEDGER} WHERE connection_id = %s "
                "ORDER BY imported_at",
                (connection_id,),
            ).fetchall()
        return {key: etag for key, etag in rows}

    def load(
        self,
        spec: ImportSpec,
        batches: Iterable[pa.RecordBatch | AsIsLines],
        *,
        connection_id: str,
        tenant: str,
        key: str,
        etag: str,
        size: int,
    ) -> Loaded:
        """Load one object's rows and record it, in one transaction; an exception from
        ``batches`` (a rejected file) or from PostgreSQL rolls back both. A row the table
        refuses raises ``FileRejectedError``; any other database error ``SourceError``."""
        try:
            with psycopg.connect(self.url) as conn, conn.transaction(), conn.cursor() as cur:
                claimed = cur.execute(
                    f"INSERT INTO {LEDGER} (connection_id, object_key, etag, import_name, "
                    "tenant, target_table, rows, bytes) VALUES (%s, %s, %s, %s, %s, %s, 0, %s) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    (connection_id, key, etag, spec.name, tenant, spec.table, size),
                ).fetchone()
                if claimed is None:
                    return Loaded(rows=0, already=True)
                rows = _copy(cur, spec, batches, tenant)
                cur.execute(
                    f"UPDATE {LEDGER} SET rows = %s "
                    "WHERE connection_id = %s AND object_key = %s AND etag = %s",
                    (rows, connection_id, key, etag),
                )
        except psycopg.errors.UndefinedTable as exc:
            missing = LEDGER if LEDGER in str(exc) else spec.table
            fix = (
                "run `byob migrate-imports` (or its SQL, sources/import_target.LEDGER_DDL)"
                if missing == LEDGER
                else "create it, or fix `table` in the models file"
            )
            raise SourceError(
                f"import {spec.name!r}: table {missing} does not exist; {fix}", field="table"
            ) from exc
        except psycopg.Error as exc:
            raise SourceError(
                f"import {spec.name!r}: loading {key!r} into {spec.table} failed, nothing of it "
                f"was kept: {str(exc).strip().splitlines()[0]}"
            ) from exc
        return Loaded(rows=rows, already=False)


def _copy(
    cur: psycopg.Cursor[tuple[object, ...]],
    spec: ImportSpec,
    chunks: Iterable[pa.RecordBatch | AsIsLines],
    tenant: str,
) -> int:
    """COPY the rows, the tenant last in each; the rows copied. The first chunk sets the
    columns' order and the delimiter: its own when its lines can go as they are (then so can
    the file's other plain blocks), else the declared order and a comma."""
    ahead = iter(chunks)
    first = next(ahead, None)
    lead = None if first is None or isinstance(first, pa.RecordBatch) else first
    as_is = lead is not None and _takes_as_is(cur, spec)
    names, delimiter = (
        (lead.names, lead.delimiter)
        if as_is and lead is not None
        else (tuple(spec.column_names()), ",")
    )
    columns = ", ".join(quote_ident(c) for c in (*names, spec.tenant_column))
    copy_sql = (
        f"COPY {quote_table(spec.table)} ({columns}) FROM STDIN "
        f"WITH (FORMAT csv, DELIMITER '{delimiter}')"  # one of engine.import_files's
    )
    # The tenant as a quoted field: never NULL, and any character it holds is only text.
    line_end = (delimiter + '"' + tenant.replace('"', '""') + '"\n').encode()
    options = pacsv.WriteOptions(include_header=False, delimiter=delimiter)
    rows = 0
    every: Iterator[pa.RecordBatch | AsIsLines] = (
        ahead if first is None else itertools.chain((first,), ahead)
    )
    # Rows of plain CSV blocks from the file's first row on: each of them on a line of its
    # own, so a row among them is on the line after as many as came before (and the header).
    plain = 0
    try:
        with cur.copy(copy_sql) as copy:
            for chunk in every:
                if not isinstance(chunk, pa.RecordBatch) and plain == rows:
                    plain += chunk.batch.num_rows
                if isinstance(chunk, pa.RecordBatch):
                    batch = chunk
                elif as_is and chunk.names == names and chunk.delimiter == delimiter:
                    copy.write(chunk.lines.replace(b"\n", line_end))
                    rows += chunk.batch.num_rows
                    continue
                else:
                    batch = chunk.batch
                copy.write(_csv(batch, names, tenant, options))
                rows += batch.num_rows
    except psycopg.Error as exc:
        if (exc.sqlstate or "")[:2] not in _REFUSED_ROW_CLASSES:
            raise
        raise FileRejectedError((_refused_row(exc, spec, plain),)) from exc
    return rows


def _refused_row(exc: psycopg.Error, spec: ImportSpec, plain: int) -> RowProblem:
    """What PostgreSQL said of the row it refused, at the file's line when that is certain:
    COPY counts rows, and a CSV file's rows match its lines only while they are plain (no
    blank line, no line break inside a value); a Parquet problem's line is its row."""
    diag = exc.diag
    said = diag.message_primary or str(exc).strip().splitlines()[0]
    if diag.message_detail:
        said += "; " + shorten(diag.message_detail.rstrip("."), 200)
    at = _COPY_CONTEXT.search(diag.context or "")
    row = int(at.group(1)) if at else None
    column, value = diag.column_name, None
    if at and at.group(2).startswith(", column "):
        column, value = _column_and_value(at.group(2), (*spec.column_names(), spec.tenant_column))
    header = spec.format is ImportFormat.CSV and spec.csv_header
    if row is None:
        line, reason = None, f"the table refused a row: {said}"
    elif row <= plain:
        line, reason = row + (1 if header else 0), f"the table refused the row: {said}"
    elif spec.format is ImportFormat.PARQUET:
        line, reason = row, f"the table refused the row: {said}"
    else:
        counted = " (not counting the header)" if header else ""
        line, reason = None, f"the table refused row {row} of the file{counted}: {said}"
    return RowProblem(line=line, column=column, value=value, reason=reason)


def _column_and_value(where: str, names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The column (and its value) COPY names after ", column ": told by the import's own
    names, as a name may hold a colon or a space."""
    for name in sorted(names, key=len, reverse=True):
        prefix = f", column {name}"
        if where == prefix or where.startswith(prefix + ": "):
            rest = where[len(prefix) + 2 :]
            quoted = len(rest) >= 2 and rest.startswith('"') and rest.endswith('"')
            return name, shorten(rest[1:-1]) if quoted else None
    return None, None


def _takes_as_is(cur: psycopg.Cursor[tuple[object, ...]], spec: ImportSpec) -> bool:
    """Whether each non-text column of the table has exactly its declared type."""
    actual = {
        str(name): str(kind)
        for name, kind in cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (quote_table(spec.table),),
        )
    }
    return all(
        c.type.kind is Kind.STRING or actual.get(c.name) == _same_type(c) for c in spec.columns
    )


def _same_type(column: ImportColumn) -> str | None:
    if column.type.kind is Kind.DECIMAL:
        return f"numeric({column.type.precision},{column.type.scale})"
    return _SAME_TYPE.get(column.type.kind)


def _csv(
    batch: pa.RecordBatch, names: tuple[str, ...], tenant: str, options: pacsv.WriteOptions
) -> bytes:
    columns = [batch.column(name) for name in names]
    table = pa.Table.from_arrays(
        [
            *(_utc_text(c) if _zoned(c.type) else c for c in columns),
            pa.repeat(pa.scalar(tenant, pa.string()), batch.num_rows),
        ],
        names=[*names, ""],
    )
    out = io.BytesIO()
    pacsv.write_csv(table, out, options)
    return out.getvalue()


def _zoned(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.tz is not None


def _utc_text(column: pa.Array) -> pa.Array:
    """A zoned timestamp as UTC text ending in "Z". Arrow formats a zoned timestamp through
    its time zone database, value by value (7 µs each, most of a load's time when measured);
    the same instant read as a naive UTC time formats in bulk."""
    naive = column.cast(pa.timestamp(column.type.unit))
    return pc.binary_join_element_wise(pc.cast(naive, pa.string()), "Z", "")
