"""The "floor": the least work any exporter must do to turn a tenant's rows into Parquet.

ADBC streams Arrow record batches straight from PostgreSQL's binary protocol; each batch is
cast to the delivered schema and written with pyarrow's ParquetWriter. Nothing else — no state,
no retries, no upload — so byob's overhead is whatever it spends beyond this.

Two variants:
  * serial     — read, cast, encode, one after the other on one thread;
  * overlapped — one thread reads (the ADBC stream releases the GIL while it waits on the
                 socket and parses), another casts and encodes, joined by a bounded queue so
                 memory stays bounded when the reader outpaces the encoder.
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
from dataset import COLUMNS, TABLE

# byob's choice of dictionary-encoded columns is a writer setting like compression: the floor
# uses the same one, so the comparison is of the work around the encoder, not of its settings.
from byob.engine.parquet_files import dictionary_columns

# Buffered batches are flushed once they reach this many rows: each flush is one write_table
# call, hence one row group. ADBC yields ~100k-row batches here, so groups land at ~300k rows.
ROW_GROUP_ROWS = 262_144
QUEUE_DEPTH = 4

QUERY = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE tenant_id = $1"

# The delivered schema: exact decimals, millisecond UTC timestamps.
TARGET_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("tenant_id", pa.string()),
        ("account_id", pa.int64()),
        ("invoice_number", pa.string()),
        ("status", pa.string()),
        ("currency", pa.string()),
        ("amount", pa.decimal128(18, 2)),
        ("tax", pa.decimal128(18, 2)),
        ("balance", pa.decimal128(18, 2)),
        ("invoice_date", pa.date32()),
        ("due_date", pa.date32()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("updated_at", pa.timestamp("ms", tz="UTC")),
        ("notes", pa.string()),
    ]
)

PARQUET_OPTIONS = dict(
    version="2.6",
    compression="snappy",
    coerce_timestamps="ms",
    allow_truncated_timestamps=True,
    use_deprecated_int96_timestamps=False,
    use_compliant_nested_type=True,
)


def to_target(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast one ADBC batch to TARGET_SCHEMA.

    numeric arrives as an opaque extension type over its text form, so its storage is what
    gets parsed into decimal128. Timestamps are truncated to ms (unsafe cast) because that is
    the delivered precision; every other cast stays safe so real data loss still raises.
    """
    arrays = []
    for target, column in zip(TARGET_SCHEMA, batch.columns, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        if column.type != target.type:
            safe = not pa.types.is_timestamp(target.type)
            column = pc.cast(column, target.type, safe=safe)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=TARGET_SCHEMA)


@dataclass
class Written:
    """What a contender wrote: totals read back by the parent from the files themselves."""

    rows: int = 0
    files: list[str] = field(default_factory=list)


class TenantFileWriter:
    """Writes one tenant's batches to one Parquet file, one row group per ROW_GROUP_ROWS.

    The file is opened lazily so a tenant without rows leaves no empty file behind.
    """

    def __init__(self, path: Path, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.path = path
        self.row_group_rows = row_group_rows
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Buffer a batch (already in TARGET_SCHEMA); flush once a row group's worth is held."""
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
        table = pa.Table.from_batches(self._pending, schema=TARGET_SCHEMA)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.path,
                TARGET_SCHEMA,
                use_dictionary=dictionary_columns(table),
                **PARQUET_OPTIONS,
            )
        # row_group_size = the whole table, so this call is exactly one row group.
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows
        self._pending, self._pending_rows = [], 0


def tenant_path(out_dir: Path, tenant: str) -> Path:
    """Where a tenant's export lands: a Hive-style partition directory per tenant."""
    return out_dir / f"tenant_id={tenant}" / "part-00000.parquet"


def stream_tenant(conn, tenant: str, inline: bool = False) -> Iterator[pa.RecordBatch]:
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
            cursor.execute(QUERY.replace("$1", quote_literal(tenant)))
        else:
            cursor.execute(QUERY, (tenant,))
        yield from cursor.fetch_record_batch()


def quote_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings, the default since 9.1)."""
    if "\x00" in value:
        raise ValueError("NUL cannot appear in a PostgreSQL string")
    return "'" + value.replace("'", "''") + "'"


def export_serial(
    pg_url: str, tenants: Iterable[str], out_dir: Path, inline: bool = False
) -> Written:
    """Read, cast and encode each tenant in turn on this one thread."""
    written = Written()
    with adbc.connect(pg_url) as conn:
        for tenant in tenants:
            writer = TenantFileWriter(tenant_path(out_dir, tenant))
            for batch in stream_tenant(conn, tenant, inline):
                writer.write(to_target(batch))
            writer.close()
            _record(written, writer)
    return written


# Queue items: (tenant, batch) for data, (tenant, None) at a tenant's end, then _DONE once.
_DONE = object()


def export_overlapped(
    pg_url: str, tenants: Iterable[str], out_dir: Path, inline: bool = False
) -> Written:
    """Read on a background thread while this thread casts and encodes.

    The reader carries on into the next tenant while the encoder finishes the previous one,
    so the overlap does not stop at tenant boundaries.
    """
    items: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    reader = threading.Thread(
        target=_read_all,
        args=(pg_url, list(tenants), inline, items),
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
            writer = TenantFileWriter(tenant_path(out_dir, tenant))
        if batch is None:
            writer.close()
            _record(written, writer)
            writer = None
        else:
            writer.write(to_target(batch))
    reader.join()
    return written


def _read_all(pg_url: str, tenants: list[str], inline: bool, items: queue.Queue) -> None:
    """Reader thread body: every tenant's batches into the queue, errors included."""
    try:
        with adbc.connect(pg_url) as conn:
            for tenant in tenants:
                for batch in stream_tenant(conn, tenant, inline):
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
