"""Where an import's files land: a table in the vendor's PostgreSQL (the models file's
[source] database), loaded with COPY. Each object (connection, key, ETag) is loaded exactly
once: its rows and its row in ``byob_import_ledger`` commit in one transaction, so a kill at
any moment leaves the whole file or none of it, and a second worker taking the same object
waits on the ledger's primary key and then finds it done.

Rows reach COPY as CSV written by Arrow from the typed batches of `engine.import_files`: strings
are always quoted, so an empty string stays an empty string and an unquoted empty field is
NULL; timestamps carry their zone ("…Z"). The tenant column is the connection's tenant, added
here, never read from the file."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from byob.domain.imports import ImportSpec
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


@dataclass(frozen=True)
class Loaded:
    rows: int
    already: bool  # the ledger had it: loaded earlier (or by another worker), nothing done now


class PostgresImportTarget:
    def __init__(self, url: str) -> None:
        self.url = url

    def ensure_ledger(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(LEDGER_DDL)

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
    tenants = pa.array([tenant] * batch.num_rows, pa.string())
    table = pa.Table.from_batches([batch]).add_column(0, tenant_column, tenants)
    out = io.BytesIO()
    pacsv.write_csv(table, out, _CSV)
    return out.getvalue()
