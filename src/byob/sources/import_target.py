"""Where an import's files land: a table in the vendor's PostgreSQL (the models file's
[source] database), loaded with COPY. Each object (connection, key, ETag) is loaded exactly
once: its rows and its row in ``byob_import_ledger`` commit in one transaction, so a kill at
any moment leaves the whole file or none of it, and a second worker taking the same object
waits on the ledger's primary key and then finds it done.

Rows reach COPY as CSV written by Arrow from the typed batches of `engine.import_files`: strings
are always quoted, so an empty string stays an empty string and an unquoted empty field is
NULL; zoned timestamps are written as UTC ending in "Z". The tenant column is the connection's
tenant, added here, never read from the file."""

from __future__ import annotations

import io
from collections.abc import Iterable

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from byob.domain.imports import ImportSpec, Loaded
from byob.errors import SourceError
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
_CSV = pacsv.WriteOptions(include_header=False)


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
        batches: Iterable[pa.RecordBatch],
        *,
        connection_id: str,
        tenant: str,
        key: str,
        etag: str,
        size: int,
    ) -> Loaded:
        """Load one object's rows and record it, in one transaction; an exception from
        ``batches`` (a rejected file) or from PostgreSQL rolls back both."""
        columns = ", ".join(quote_ident(c) for c in (spec.tenant_column, *spec.column_names()))
        copy_sql = f"COPY {quote_table(spec.table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
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
                rows = 0
                with cur.copy(copy_sql) as copy:
                    for batch in batches:
                        copy.write(_csv(batch, spec.tenant_column, tenant))
                        rows += batch.num_rows
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


def _csv(batch: pa.RecordBatch, tenant_column: str, tenant: str) -> bytes:
    columns = [_utc_text(c) if _zoned(c.type) else c for c in batch.columns]
    table = pa.Table.from_arrays(
        [pa.repeat(pa.scalar(tenant, pa.string()), batch.num_rows), *columns],
        names=[tenant_column, *batch.schema.names],
    )
    out = io.BytesIO()
    pacsv.write_csv(table, out, _CSV)
    return out.getvalue()


def _zoned(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.tz is not None


def _utc_text(column: pa.Array) -> pa.Array:
    """A zoned timestamp as UTC text ending in "Z". Arrow formats a zoned timestamp through
    its time zone database, value by value (7 µs each, most of a load's time when measured);
    the same instant read as a naive UTC time formats in bulk."""
    naive = column.cast(pa.timestamp(column.type.unit))
    return pc.binary_join_element_wise(pc.cast(naive, pa.string()), "Z", "")
