"""Parquet encoding: row groups per flush, rolled files, hashes, and engine-safe timestamps."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byob.destinations.base import ObjectWriter
from byob.engine.parquet_files import (
    RollingParquetWriter,
    WrittenFile,
    choose_encoding,
    dictionary_columns,
    empty_parquet,
)

MIB = 1 << 20


class MemoryObject(ObjectWriter):
    """An in-memory object: bytes collected, visible only after commit."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.buffer = bytearray()
        self.committed = False
        self.aborted = False

    def write(self, data: bytes | memoryview) -> None:
        assert not (self.committed or self.aborted)
        self.buffer += bytes(data)

    def commit(self) -> int:
        assert not self.aborted
        self.committed = True
        return len(self.buffer)

    def abort(self) -> None:
        self.aborted = True

    @property
    def data(self) -> bytes:
        return bytes(self.buffer)


class Sink:
    """Opens numbered objects and records the files the writer reports."""

    def __init__(self) -> None:
        self.objects: list[MemoryObject] = []
        self.reported: list[WrittenFile] = []

    def open_object(self, part: int) -> tuple[str, ObjectWriter]:
        obj = MemoryObject(f"m/dt=2025-06-01/{part}_20250601120000.parquet")
        self.objects.append(obj)
        return obj.key, obj

    def writer(self, schema: pa.Schema, *, row_group_bytes: int, file_target_bytes: int):
        return RollingParquetWriter(
            schema,
            open_object=self.open_object,
            on_file=self.reported.append,
            row_group_bytes=row_group_bytes,
            file_target_bytes=file_target_bytes,
        )


BLOB_SCHEMA = pa.schema([("id", pa.int64()), ("blob", pa.binary())])


def blob_batch(start: int, rows: int = 100, size: int = 1000) -> pa.RecordBatch:
    """Incompressible rows, so byte sizes are predictable."""
    return pa.record_batch(
        [pa.array(range(start, start + rows), pa.int64()), [os.urandom(size) for _ in range(rows)]],
        schema=BLOB_SCHEMA,
    )


def metadata(data: bytes) -> pq.FileMetaData:
    return pq.ParquetFile(io.BytesIO(data)).metadata


def test_each_flush_is_one_row_group() -> None:
    sink = Sink()
    writer = sink.writer(BLOB_SCHEMA, row_group_bytes=1, file_target_bytes=1 << 40)
    for n in range(5):
        writer.write(blob_batch(n * 10, rows=10, size=10))
    files = writer.finish()
    assert len(files) == 1
    meta = metadata(sink.objects[0].data)
    assert meta.num_row_groups == 5
    assert [meta.row_group(i).num_rows for i in range(5)] == [10] * 5


def test_small_batches_are_buffered_into_one_row_group() -> None:
    sink = Sink()
    writer = sink.writer(BLOB_SCHEMA, row_group_bytes=64 * MIB, file_target_bytes=256 * MIB)
    for n in range(7):
        writer.write(blob_batch(n * 10, rows=10, size=10))
    assert sink.objects == []  # nothing flushed yet
    (file,) = writer.finish()
    meta = metadata(sink.objects[0].data)
    assert meta.num_row_groups == 1
    assert meta.num_rows == file.rows == 70


def test_files_roll_at_the_target_size() -> None:
    sink = Sink()
    # ~100 KB per batch; a row group every 3 batches (~300 KB); a file every ~4 row groups.
    writer = sink.writer(BLOB_SCHEMA, row_group_bytes=250_000, file_target_bytes=MIB)
    batches = 40
    for n in range(batches):
        writer.write(blob_batch(n * 100))
    files = writer.finish()

    assert len(files) >= 3
    assert [f.file_part for f in files] == list(range(1, len(files) + 1))
    assert sink.reported == files
    assert sum(f.rows for f in files) == batches * 100
    ids: list[int] = []
    for file, obj in zip(files, sink.objects, strict=True):
        assert obj.committed and not obj.aborted
        assert file.key == obj.key
        assert file.bytes == len(obj.data)
        assert file.sha256 == hashlib.sha256(obj.data).hexdigest()
        meta = metadata(obj.data)
        assert meta.num_rows == file.rows
        assert meta.num_row_groups >= 1
        for i in range(meta.num_row_groups):
            assert meta.row_group(i).num_rows == 300 or file is files[-1]
        ids += pq.read_table(io.BytesIO(obj.data)).column("id").to_pylist()
    assert ids == list(range(batches * 100))

    for file, obj in zip(files[:-1], sink.objects[:-1], strict=True):
        assert file.bytes >= MIB
        # It rolled as soon as the target was reached: without its last row group it was short.
        meta = metadata(obj.data)
        before_last = 4 + sum(
            meta.row_group(i).column(c).total_compressed_size
            for i in range(meta.num_row_groups - 1)
            for c in range(meta.num_columns)
        )
        assert before_last < MIB


def test_empty_batches_and_no_rows_write_nothing() -> None:
    sink = Sink()
    writer = sink.writer(BLOB_SCHEMA, row_group_bytes=1, file_target_bytes=MIB)
    writer.write(blob_batch(0, rows=0))
    assert writer.finish() == []
    assert sink.objects == [] and sink.reported == []


def test_abort_discards_the_open_file() -> None:
    sink = Sink()
    writer = sink.writer(BLOB_SCHEMA, row_group_bytes=1, file_target_bytes=MIB)
    writer.write(blob_batch(0, rows=10))
    writer.abort()
    (obj,) = sink.objects
    assert obj.aborted and not obj.committed
    assert sink.reported == [] and writer.files == []


# --- types in the file --------------------------------------------------------------------

MOMENT = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def ts_batch(unit: str) -> tuple[pa.Schema, pa.RecordBatch]:
    schema = pa.schema(
        [
            ("naive", pa.timestamp(unit)),
            ("aware", pa.timestamp(unit, tz="UTC")),
            ("day", pa.date32()),
            ("amount", pa.decimal128(18, 2)),
            ("tags", pa.list_(pa.string())),
        ]
    )
    moments = [MOMENT + timedelta(days=n) for n in range(3)]
    batch = pa.record_batch(
        [
            pa.array([m.replace(tzinfo=None) for m in moments], pa.timestamp(unit)),
            pa.array(moments, pa.timestamp(unit, tz="UTC")),
            pa.array([m.date() for m in moments], pa.date32()),
            pa.array([None, 1, 2], pa.decimal128(18, 2)),
            pa.array([["a"], [], None], pa.list_(pa.string())),
        ],
        schema=schema,
    )
    return schema, batch


def write_one(schema: pa.Schema, batch: pa.RecordBatch) -> bytes:
    sink = Sink()
    writer = sink.writer(schema, row_group_bytes=1, file_target_bytes=MIB)
    writer.write(batch)
    writer.finish()
    (obj,) = sink.objects
    return obj.data


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_timestamps_are_int64_millis(unit: str) -> None:
    data = write_one(*ts_batch(unit))
    parquet_schema = pq.ParquetFile(io.BytesIO(data)).schema
    physical = [parquet_schema.column(i).physical_type for i in range(len(parquet_schema))]
    assert "INT96" not in physical

    by_name = {
        parquet_schema.column(i).name: parquet_schema.column(i) for i in range(len(parquet_schema))
    }
    for name, adjusted in (("naive", False), ("aware", True)):
        column = by_name[name]
        assert column.physical_type == "INT64"
        logical = json.loads(column.logical_type.to_json())
        assert logical["Type"] == "Timestamp"
        assert logical["timeUnit"] == "milliseconds"
        assert logical["isAdjustedToUTC"] is adjusted

    table = pq.read_table(io.BytesIO(data))
    assert table.schema.field("aware").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("naive").type == pa.timestamp("ms")
    assert table.column("aware")[0].as_py() == MOMENT.replace(microsecond=123000)
    assert table.column("naive")[0].as_py() == MOMENT.replace(microsecond=123000, tzinfo=None)


def test_other_types_and_compression() -> None:
    data = write_one(*ts_batch("ms"))
    meta = metadata(data)
    columns = [meta.row_group(0).column(i) for i in range(meta.num_columns)]
    assert {c.compression for c in columns} == {"SNAPPY"}
    table = pq.read_table(io.BytesIO(data))
    assert table.schema.field("amount").type == pa.decimal128(18, 2)
    assert table.schema.field("day").type == pa.date32()
    assert table.column("tags").to_pylist() == [["a"], [], None]
    assert meta.format_version == "2.6"


def test_empty_parquet_reads_back_with_schema_and_no_rows() -> None:
    schema, _ = ts_batch("ms")
    schema = schema.with_metadata({"byob.model": "invoices"})
    data = empty_parquet(schema)
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 0
    assert table.schema.equals(schema, check_metadata=False)
    assert table.schema.metadata[b"byob.model"] == b"invoices"


def test_dictionary_encoding_only_for_repeating_columns() -> None:
    rows = 20_000
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("status", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("note", pa.string()),
            ("flag", pa.bool_()),
        ]
    )
    batch = pa.record_batch(
        [
            pa.array(range(rows), pa.int64()),
            pa.array(["open", "paid", "void"] * (rows // 3) + ["open"] * (rows % 3)),
            pa.array([["a", "b"]] * rows, pa.list_(pa.string())),
            pa.array([None] * rows, pa.string()),  # nothing to judge: the cheap default stays
            pa.array([True, False] * (rows // 2)),
        ],
        schema=schema,
    )
    assert dictionary_columns(pa.Table.from_batches([batch])) == [
        "status",
        "tags.list.element",
        "note",
    ]

    sink = Sink()
    writer = sink.writer(schema, row_group_bytes=1, file_target_bytes=1 << 40)
    writer.write(batch)
    writer.finish()
    data = sink.objects[0].data
    chunks = {c.path_in_schema: c for c in map(metadata(data).row_group(0).column, range(5))}
    assert "RLE_DICTIONARY" in chunks["status"].encodings
    assert "RLE_DICTIONARY" in chunks["tags.list.element"].encodings
    assert "RLE_DICTIONARY" not in chunks["id"].encodings
    assert pq.read_table(io.BytesIO(data)).equals(pa.Table.from_batches([batch]))


def _compression_table(rows: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),  # compresses well
            "key": pa.array([os.urandom(16).hex() for _ in range(rows)]),  # random hex text
            "status": pa.array(["open", "paid"] * (rows // 2)),  # dictionary-encoded
            "tags": pa.array([[os.urandom(8).hex()]] * rows, pa.list_(pa.string())),  # repeats
        }
    )


def test_columns_snappy_barely_shrinks_are_written_uncompressed() -> None:
    table = _compression_table(20_000)
    encoding = choose_encoding(table)
    assert encoding.uncompressed == ["key"]

    sink = Sink()
    writer = sink.writer(table.schema, row_group_bytes=1, file_target_bytes=1 << 40)
    for batch in table.to_batches():
        writer.write(batch)
    writer.finish()
    data = sink.objects[0].data
    row_group = metadata(data).row_group(0)
    codecs = {c.path_in_schema: c.compression for c in map(row_group.column, range(4))}
    assert codecs == {
        "id": "SNAPPY",
        "key": "UNCOMPRESSED",
        "status": "SNAPPY",
        "tags.list.element": "SNAPPY",
    }
    assert pq.read_table(io.BytesIO(data)).equals(table)


def test_a_small_first_row_group_keeps_snappy_everywhere() -> None:
    encoding = choose_encoding(_compression_table(500))
    assert encoding.codecs == ()
    assert encoding.writer_options()["compression"] == "snappy"


@pytest.mark.parametrize(("chosen", "pool"), [(None, "jemalloc"), ("system", "system")])
def test_arrow_allocates_from_jemalloc_unless_the_operator_chose_a_pool(
    chosen: str | None, pool: str
) -> None:
    """In a fresh interpreter, as at every entry point: importing byob names the pool before
    pyarrow loads, for Arrow's C++ code and Python-side calls alike."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    script = (
        "import byob.engine.parquet_files as p, pyarrow as pa\n"
        "p.use_returning_allocator()\n"
        "print(pa.default_memory_pool().backend_name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == pool
