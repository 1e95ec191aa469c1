"""Parquet encoding into destination objects: row groups buffered to a size, files rolled at a
target size, every byte hashed on its way out."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from byob.destinations.base import ObjectWriter

# Settings every engine reads the same way (shared/reference/aws-facts.md): INT64 millisecond
# timestamps, never INT96 or nanoseconds, no Spark flavor (it turns INT96 on and renames).
WRITER_OPTIONS = {
    "version": "2.6",
    "compression": "snappy",
    "coerce_timestamps": "ms",
    "allow_truncated_timestamps": True,
    "use_deprecated_int96_timestamps": False,
    "use_compliant_nested_type": True,
    "write_statistics": True,
}


# Dictionary encoding pays for columns that repeat values (status, currency, a tenant's
# accounts) and is wasted work for near-unique ones (ids, amounts, timestamps): the writer
# builds the dictionary, outgrows its page limit and falls back to plain encoding in every row
# group, roughly doubling encode time for nothing. Which is which is read off a sample.
DICTIONARY_SAMPLE_ROWS = 10_000
DICTIONARY_MAX_DISTINCT_RATIO = 0.5

# Snappy costs the most time where it finds the least to take out: near-random values (uuids
# and hashes as text, random doubles). On a million uuids as text it took 0.5 s of a 0.6 s
# encode to save a tenth of the bytes (the length prefixes), and a 2-core machine has
# nothing to spare. A column whose sample snappy shrinks by less than this share is written
# uncompressed; every Parquet reader reads that, column by column.
COMPRESSION_MIN_SAVING = 1 / 8
# Fewer sampled rows than this are too few to judge, and their column too small to matter.
COMPRESSION_MIN_SAMPLE_ROWS = 1_000


@dataclass(frozen=True)
class ColumnEncoding:
    """How a file's columns are encoded, chosen once from the first row group's first rows.

    Readers do not care either way; the choice only moves encode time and file size."""

    dictionary: tuple[str, ...]  # column paths dictionary-encoded
    # Every column path, each with its codec, when some are not the default's.
    codecs: tuple[tuple[str, str], ...] = ()

    def writer_options(self) -> dict[str, object]:
        """`ParquetWriter` keyword arguments: byob's settings with this choice."""
        options: dict[str, object] = {**WRITER_OPTIONS, "use_dictionary": list(self.dictionary)}
        if self.codecs:
            options["compression"] = dict(self.codecs)
        return options

    @property
    def uncompressed(self) -> list[str]:
        return [path for path, codec in self.codecs if codec == "none"]


def choose_encoding(table: pa.Table) -> ColumnEncoding:
    """The column encoding for a file whose first row group is ``table``."""
    dictionary = dictionary_columns(table)
    return ColumnEncoding(tuple(dictionary), _codecs(table, dictionary))


def dictionary_columns(table: pa.Table) -> list[str]:
    """The column paths worth dictionary-encoding, judged from the table's first rows."""
    sample = table.slice(0, DICTIONARY_SAMPLE_ROWS)
    chosen = []
    for field, column in zip(table.schema, sample.columns, strict=True):
        path, values = field.name, column
        while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            path, values = f"{path}.list.element", pc.list_flatten(values)
        if pa.types.is_boolean(values.type):
            continue  # bit-packed already; a dictionary cannot beat one bit
        present = len(values) - values.null_count
        if (
            present == 0
            or pc.count_distinct(values).as_py() <= present * DICTIONARY_MAX_DISTINCT_RATIO
        ):
            chosen.append(path)
    return chosen


def _codecs(table: pa.Table, dictionary: list[str]) -> tuple[tuple[str, str], ...]:
    """Every column path with its codec, when snappy shrinks a plain-encoded column by less
    than `COMPRESSION_MIN_SAVING` (that one "none"); else empty, and snappy throughout.

    Measured the way the writer will do it: the sample written as Parquet, its column chunks'
    compressed and uncompressed sizes compared. A mapping must name every column: pyarrow
    gives a column it leaves out no codec at all."""
    sample = table.slice(0, DICTIONARY_SAMPLE_ROWS)
    if sample.num_rows < COMPRESSION_MIN_SAMPLE_ROWS:
        return ()
    sink = pa.BufferOutputStream()
    pq.write_table(sample, sink, use_dictionary=dictionary, **WRITER_OPTIONS)
    row_group = pq.read_metadata(pa.BufferReader(sink.getvalue())).row_group(0)
    codecs, default = [], str(WRITER_OPTIONS["compression"])
    for index in range(row_group.num_columns):
        chunk = row_group.column(index)
        raw, compressed = chunk.total_uncompressed_size, chunk.total_compressed_size
        barely = raw > 0 and 1 - compressed / raw < COMPRESSION_MIN_SAVING
        plain = chunk.path_in_schema not in dictionary
        codecs.append((chunk.path_in_schema, "none" if barely and plain else default))
    return tuple(codecs) if any(codec == "none" for _, codec in codecs) else ()


# How long jemalloc keeps freed pages before handing them back. 0 handed them back at once, and
# the next batch's buffers faulted them in again, zeroed by the kernel: a third of the system
# CPU of a 1M-row uuid transfer (0.6 -> 0.3-0.5 s, wall 2.4 -> 2.2 s). A quarter of a second
# covers the next few batches, for ~15 MB more at the peak.
JEMALLOC_DECAY_MS = 250


def use_returning_allocator() -> None:
    """Use, Python-side too, the pool `byob/__init__.py` names for Arrow's C++ code (jemalloc
    unless the operator chose another), and let jemalloc hand freed pages back soon: row
    groups come and go all transfer long, and peak RSS is what operators provision for."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") != "jemalloc":
        return  # the operator's choice stands
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow build without jemalloc
        return
    pa.set_memory_pool(pool)
    pa.jemalloc_set_decay_ms(JEMALLOC_DECAY_MS)


class HashingSink:
    """The file object pyarrow writes to: counts and hashes bytes, passes them on."""

    closed = False

    def __init__(self, target: ObjectWriter) -> None:
        self.target = target
        self.size = 0
        self._sha = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        self._sha.update(data)
        self.target.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.size

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


@dataclass(frozen=True, kw_only=True)
class WrittenFile:
    file_part: int
    key: str
    rows: int
    bytes: int
    sha256: str


# Row groups are written from at most this many chunks (more are combined first).
_MAX_CHUNKS = 16

OpenObject = Callable[[int], tuple[str, ObjectWriter]]  # file_part -> (key, writer)
FileDone = Callable[[WrittenFile], None]


class RollingParquetWriter:
    """Writes batches of one schema into numbered files of about ``file_target_bytes``."""

    def __init__(
        self,
        schema: pa.Schema,
        *,
        open_object: OpenObject,
        on_file: FileDone,
        row_group_bytes: int,
        file_target_bytes: int,
    ) -> None:
        self.schema = schema
        self._open_object = open_object
        self._on_file = on_file
        self._row_group_bytes = row_group_bytes
        self._file_target_bytes = file_target_bytes
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0
        self._spill: _Spill | None = None  # buffered batches moved to disk (`spill`)
        self._file_part = 0
        self._current: tuple[str, ObjectWriter, HashingSink, pq.ParquetWriter] | None = None
        self._file_rows = 0
        self._encoding: ColumnEncoding | None = None  # chosen from the first row group
        self.files: list[WrittenFile] = []

    @property
    def bytes_written(self) -> int:
        """Parquet bytes written so far, in finished files and the one being filled."""
        current = self._current[2].size if self._current is not None else 0
        return sum(f.bytes for f in self.files) + current

    @property
    def encoding(self) -> ColumnEncoding | None:
        """How the columns are encoded, once chosen (from the first row group)."""
        return self._encoding

    def choose_encoding(self, encoding: ColumnEncoding) -> None:
        """Take another writer's choice rather than sampling this one's first row group: a
        fan-out's connections share one model, and sampling costs ~6 ms a connection."""
        if self._encoding is None:
            self._encoding = encoding

    @property
    def pending_bytes(self) -> int:
        """Arrow bytes buffered in memory for the next row group."""
        return self._pending_bytes

    def write(self, batch: pa.RecordBatch, *, nbytes: int | None = None) -> None:
        """Buffer ``batch`` for the next row group. ``nbytes``: its Arrow bytes, when the
        caller has them cheaper than ``batch.nbytes`` measures a slice."""
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes if nbytes is None else nbytes
        spilled = self._spill.bytes if self._spill is not None else 0
        if self._pending_bytes + spilled >= self._row_group_bytes:
            self._flush_row_group()

    def spill(self) -> None:
        """Move the buffered batches to a local temporary file (writers sharing one memory
        budget): the row group they belong to is written whole later, at its full size, where
        writing it now would make a small one. Batches that are slices of larger ones (a
        fan-out's share of a scan's batch) also stop keeping their parent alive."""
        if not self._pending:
            return
        if self._spill is None:
            self._spill = _Spill(self.schema)
        self._spill.write(self._pending, self._pending_bytes)
        self._pending, self._pending_bytes = [], 0

    def _flush_row_group(self) -> None:
        if self._spill is not None:
            spill, self._spill = self._spill, None
            self._pending[:0] = spill.read_back()
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        if len(self._pending) > _MAX_CHUNKS:
            table = table.combine_chunks()  # the writer pays per chunk; a copy costs less
        self._pending, self._pending_bytes = [], 0
        if self._encoding is None:
            self._encoding = choose_encoding(table)
        if self._current is None:
            self._open_next()
        assert self._current is not None
        # One write call is one row group.
        self._current[3].write_table(table, row_group_size=table.num_rows)
        self._file_rows += table.num_rows
        if self._current[2].size >= self._file_target_bytes:
            self._close_current()

    def _open_next(self) -> None:
        self._file_part += 1
        key, target = self._open_object(self._file_part)
        sink = HashingSink(target)
        assert self._encoding is not None  # chosen before the first row group
        writer = pq.ParquetWriter(sink, self.schema, **self._encoding.writer_options())
        self._current = (key, target, sink, writer)
        self._file_rows = 0

    def _close_current(self) -> None:
        assert self._current is not None
        key, target, sink, writer = self._current
        writer.close()  # writes the footer through the sink
        target.commit()
        done = WrittenFile(
            file_part=self._file_part,
            key=key,
            rows=self._file_rows,
            bytes=sink.size,
            sha256=sink.sha256,
        )
        self._current = None
        self.files.append(done)
        self._on_file(done)

    def finish(self) -> list[WrittenFile]:
        self._flush_row_group()
        if self._current is not None:
            self._close_current()
        return self.files

    def abort(self) -> None:
        self._pending = []
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._current is not None:
            _, target, _, writer = self._current
            self._current = None
            with contextlib.suppress(Exception):
                writer.close()
            target.abort()


class _Spill:
    """Batches kept in an Arrow IPC stream in a temporary file (deleted when closed)."""

    def __init__(self, schema: pa.Schema) -> None:
        self._file = tempfile.TemporaryFile(prefix="byob-spill-")  # noqa: SIM115 - closed below
        self._sink = pa.PythonFile(self._file, mode="w")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self.bytes = 0  # Arrow bytes of the batches held

    def write(self, batches: list[pa.RecordBatch], nbytes: int) -> None:
        # One batch per spill: a fan-out's slices are small, and the Parquet writer pays
        # for every chunk it is given (a row group of 168 slices of 120 rows took 1.8× the
        # time of the same rows in one).
        self._writer.write_batch(pa.concat_batches(batches) if len(batches) > 1 else batches[0])
        self.bytes += nbytes

    def read_back(self) -> list[pa.RecordBatch]:
        """Every batch held, in memory again; the file is gone."""
        try:
            self._writer.close()
            self._file.seek(0)
            return list(pa.ipc.open_stream(pa.PythonFile(self._file, mode="r")))
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


def empty_parquet(schema: pa.Schema) -> bytes:
    """A valid Parquet file with no rows: replaces a file a retry no longer needs when the
    recipient has withdrawn s3:DeleteObject."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink, **WRITER_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())
