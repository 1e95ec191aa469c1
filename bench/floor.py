"""The "floor": the least work any exporter must do to turn a tenant's rows into Parquet.

ADBC streams Arrow record batches straight from PostgreSQL's binary protocol; each batch is
cast to the delivered schema and written with pyarrow's ParquetWriter. Nothing else — no state,
no retries, no upload — so byob's overhead is whatever it spends beyond this.

Two variants:
  * serial     — read, cast, encode, one after the other on one thread;
  * overlapped — one thread reads (the ADBC stream releases the GIL while it waits on the
                 socket and parses), another casts and encodes, joined by a bounded queue so
                 memory stays bounded when the reader outpaces the encoder.

And the naive loop (`export_naive`): what anyone writes first, ADBC's own types straight into
a ParquetWriter — no casts, so it does less than the floors and delivers other types.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from shapes import INVOICES, Shape

# byob's choice of dictionary-encoded columns is a writer setting like compression: the floor
# uses the same one, so the comparison is of the work around the encoder, not of its settings.
from byob.engine.parquet_files import choose_encoding

# Buffered batches are flushed once they reach this many rows: each flush is one write_table
# call, hence one row group. ADBC yields ~100k-row batches here, so groups land at ~300k rows.
ROW_GROUP_ROWS = 262_144
QUEUE_DEPTH = 4

PARQUET_OPTIONS = dict(
    version="2.6",
    compression="snappy",
    coerce_timestamps="ms",
    allow_truncated_timestamps=True,
    use_deprecated_int96_timestamps=False,
    use_compliant_nested_type=True,
)


def query(shape: Shape, naive: bool = False) -> str:
    """The shape's columns for tenant `$1`. uuid has no Arrow cast to text, so the floors read
    it as PostgreSQL's text; the naive loop reads every column as ADBC delivers it."""
    columns = [
        f"{name}::text AS {name}" if sql_type.startswith("uuid") and not naive else name
        for name, sql_type, _ in shape.columns
    ]
    return f"SELECT {', '.join(columns)} FROM {shape.table} WHERE tenant_id = $1"


def to_target(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast one ADBC batch to the delivered schema (exact decimals, ms UTC timestamps).

    numeric arrives as an opaque extension type over its text form (json as one over its
    text), so its storage is what gets cast. Timestamps are truncated to ms (unsafe cast)
    because that is the delivered precision; every other cast stays safe so real data loss
    still raises.
    """
    arrays = []
    for target, column in zip(schema, batch.columns, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        if column.type != target.type:
            safe = not pa.types.is_timestamp(target.type)
            column = pc.cast(column, target.type, safe=safe)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass
class Written:
    """What a contender wrote: totals read back by the parent from the files themselves."""

    rows: int = 0
    files: list[str] = field(default_factory=list)


class TenantFileWriter:
    """Writes one tenant's batches to one Parquet file, one row group per ROW_GROUP_ROWS.

    The file is opened lazily so a tenant without rows leaves no empty file behind.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema | None,
        row_group_rows: int = ROW_GROUP_ROWS,
        naive: bool = False,
    ) -> None:
        self.path = path
        self.schema = schema  # None: the first batch's (the naive loop writes ADBC's types)
        self.naive = naive
        self.row_group_rows = row_group_rows
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Buffer a batch (already in the file's schema); flush once a row group's worth is held."""
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush()

    def close(self) -> None:
        """Flush the tail and finish the file (writes the footer)."""
        self._flush()
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.naive:  # pyarrow's defaults but byob's compression
                options: dict = {"compression": PARQUET_OPTIONS["compression"]}
            else:
                # byob's per-column choice (dictionary, compression) from the same sample.
                options = {**PARQUET_OPTIONS, **choose_encoding(table).writer_options()}
            self._writer = pq.ParquetWriter(self.path, table.schema, **options)
        # row_group_size = the whole table, so this call is exactly one row group.
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows
        self._pending, self._pending_rows = [], 0


def tenant_path(out_dir: Path, tenant: str) -> Path:
    """Where a tenant's export lands: a Hive-style partition directory per tenant."""
    return out_dir / f"tenant_id={tenant}" / "part-00000.parquet"


def stream_tenant(
    conn, tenant: str, inline: bool = False, sql: str = query(INVOICES)
) -> Iterator[pa.RecordBatch]:
    """The tenant's rows as ADBC record batches.

    By default the tenant is a bound parameter. ADBC's PostgreSQL driver (1.13) cannot run a
    parameterised query through `COPY … TO STDOUT (FORMAT binary)`, so it falls back to
    PQexecParams, where libpq buffers the WHOLE result before the first batch is produced:
    peak memory grows with the tenant and reading is roughly twice as slow. `inline=True`
    puts the tenant in the SQL as a quoted literal instead, which keeps the streaming COPY
    path.
    """
    with conn.cursor() as cursor:
        if inline:
            cursor.execute(sql.replace("$1", quote_literal(tenant)))
        else:
            cursor.execute(sql, (tenant,))
        yield from cursor.fetch_record_batch()


def quote_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings, the default since 9.1)."""
    if "\x00" in value:
        raise ValueError("NUL cannot appear in a PostgreSQL string")
    return "'" + value.replace("'", "''") + "'"


def export_serial(
    pg_url: str,
    tenants: Iterable[str],
    out_dir: Path,
    inline: bool = False,
    shape: Shape = INVOICES,
) -> Written:
    """Read, cast and encode each tenant in turn on this one thread."""
    written = Written()
    schema, sql = shape.target_schema, query(shape)
    with adbc.connect(pg_url) as conn:
        for tenant in tenants:
            writer = TenantFileWriter(tenant_path(out_dir, tenant), schema)
            for batch in stream_tenant(conn, tenant, inline, sql):
                writer.write(to_target(batch, schema))
            writer.close()
            _record(written, writer)
    return written


def export_naive(
    pg_url: str, tenants: Iterable[str], out_dir: Path, inline: bool = True, shape: Shape = INVOICES
) -> Written:
    """The loop anyone would write first: ADBC batches straight into a ParquetWriter, ADBC's
    own types (numeric as text, µs timestamps, uuid as 16 bytes), pyarrow's defaults but
    byob's compression, one thread. The tenant is inlined by default: ADBC's fast path."""
    written = Written()
    sql = query(shape, naive=True)
    with adbc.connect(pg_url) as conn:
        for tenant in tenants:
            writer = TenantFileWriter(tenant_path(out_dir, tenant), None, naive=True)
            for batch in stream_tenant(conn, tenant, inline, sql):
                writer.write(batch)
            writer.close()
            _record(written, writer)
    return written


# Queue items: (tenant, batch) for data, (tenant, None) at a tenant's end, then _DONE once.
_DONE = object()


def export_overlapped(
    pg_url: str,
    tenants: Iterable[str],
    out_dir: Path,
    inline: bool = False,
    shape: Shape = INVOICES,
) -> Written:
    """Read on a background thread while this thread casts and encodes.

    The reader carries on into the next tenant while the encoder finishes the previous one,
    so the overlap does not stop at tenant boundaries.
    """
    items: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    schema, sql = shape.target_schema, query(shape)
    reader = threading.Thread(
        target=_read_all,
        args=(pg_url, list(tenants), inline, sql, items),
        name="adbc-reader",
        daemon=True,
    )
    # daemon: if encoding fails we raise and exit; a reader blocked on a full queue must not
    # keep the process alive.
    reader.start()
    written = Written()
    writer: TenantFileWriter | None = None
    while (item := items.get()) is not _DONE:
        if isinstance(item, BaseException):
            raise RuntimeError("reader thread failed") from item
        tenant, batch = item
        if writer is None:
            writer = TenantFileWriter(tenant_path(out_dir, tenant), schema)
        if batch is None:
            writer.close()
            _record(written, writer)
            writer = None
        else:
            writer.write(to_target(batch, schema))
    reader.join()
    return written


def _read_all(pg_url: str, tenants: list[str], inline: bool, sql: str, items: queue.Queue) -> None:
    """Reader thread body: every tenant's batches into the queue, errors included."""
    try:
        with adbc.connect(pg_url) as conn:
            for tenant in tenants:
                for batch in stream_tenant(conn, tenant, inline, sql):
                    items.put((tenant, batch))
                items.put((tenant, None))
    except BaseException as exc:  # handed to the encoder thread, which re-raises it
        items.put(exc)
        return
    items.put(_DONE)


def _record(written: Written, writer: TenantFileWriter) -> None:
    written.rows += writer.rows
    if writer.rows:
        written.files.append(str(writer.path))
