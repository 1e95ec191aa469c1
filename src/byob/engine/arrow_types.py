"""byob column types as Arrow types, and casting source batches to a model's schema."""

from __future__ import annotations

import sys
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain.models import ResolvedModel
from byob.domain.types import ColumnType, Kind
from byob.errors import SchemaChangeError

_SIMPLE: dict[Kind, pa.DataType] = {
    Kind.INT16: pa.int16(),
    Kind.INT32: pa.int32(),
    Kind.INT64: pa.int64(),
    Kind.FLOAT32: pa.float32(),
    Kind.FLOAT64: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.STRING: pa.string(),
    Kind.BINARY: pa.binary(),
    Kind.DATE: pa.date32(),
    # Milliseconds: what Athena's timestamp(3) holds; never nanoseconds, never INT96.
    Kind.TIMESTAMP: pa.timestamp("ms"),
    Kind.TIMESTAMPTZ: pa.timestamp("ms", tz="UTC"),
}

_TRUNCATING = (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


def arrow_type(ctype: ColumnType) -> pa.DataType:
    if ctype.kind is Kind.DECIMAL:
        return pa.decimal128(ctype.precision, ctype.scale)
    if ctype.kind is Kind.LIST:
        assert ctype.element is not None
        return pa.list_(arrow_type(ctype.element))
    return _SIMPLE[ctype.kind]


def arrow_schema(model: ResolvedModel) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), nullable=True) for c in model.columns],
        metadata={"byob.model": model.name},
    )


def conform(batch: pa.RecordBatch, schema: pa.Schema, model: ResolvedModel) -> pa.RecordBatch:
    """Cast a source batch to the model's schema. Lossy casts fail loudly (a decimal that
    would round, a NaN numeric), except sub-millisecond timestamp digits, which are dropped."""
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    arrays = []
    for index, (column, field) in enumerate(zip(model.columns, schema, strict=True)):
        array = batch.column(index)
        if isinstance(array.type, pa.UuidType) and field.type == pa.string():
            array = uuid_text(array)
        elif isinstance(array.type, pa.ExtensionType):
            array = array.storage
        if array.type != field.type:
            try:
                if column.type.kind in _TRUNCATING and pa.types.is_timestamp(array.type):
                    array = _floor_to_ms(array)
                array = pc.cast(array, field.type, safe=column.type.kind not in _TRUNCATING)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaChangeError(
                    f"model {model.name!r}, column {column.source_name!r}: a value cannot be "
                    f"written as {column.type} without loss ({exc}). Declare the column with "
                    "a wider type, or cast it in the source"
                ) from exc
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _floor_to_ms(array: pa.Array) -> pa.Array:
    """Prepare sub-millisecond timestamps for the truncating cast to milliseconds.

    An unsafe cast drops digits toward 1970, which is toward the past only for instants after
    it; before 1970 it would move an instant forward, even across a day. ``floor_temporal``
    is exact everywhere but costs several times the cast, so it runs only for batches that
    hold an instant before 1970.
    """
    earliest = pc.min(array.view(pa.int64())).as_py()  # None when every value is null
    if earliest is None or earliest >= 0:
        return array
    return pc.floor_temporal(array, unit="millisecond")


# uuid text, lowercase: 8-4-4-4-12 hex digits, a dash at these positions.
_UUID_DASHES = (8, 13, 18, 23)
_UUID_CHARS = 36
# Rows formatted per take of the layout below (its indices: 36 int32s per row, ~2.4 MB).
_UUID_CHUNK_ROWS = 1 << 14
_DASH = pa.array([ord("-")], pa.uint8())


def uuid_text(array: pa.Array) -> pa.Array:
    """uuids as their 16 bytes (Arrow's uuid extension type, as ADBC reads PostgreSQL's) to
    their canonical text: lowercase hex with dashes, as PostgreSQL's ``uuid::text`` prints.

    Vectorised, no per-value Python: for each chunk of rows, every byte becomes its two hex
    digits by one ``take`` from a 256-entry table (as one uint16), then one ``take`` lays out
    the 36 characters of each row from those digits and a dash. Cheaper, on the cores a
    transfer shares with the server, than having the server print them (``uuid_out``).
    Chunk by chunk, what each step allocates stays small and in cache (a whole million
    rows' digits at once, 32 MB, took 1.8× the time); the indices are ours, so unchecked.
    """
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    rows = len(storage)
    if rows == 0:
        return pa.array([], pa.string())
    raw = pa.Array.from_buffers(
        pa.uint8(), 16 * rows, [None, storage.buffers()[1]], offset=16 * storage.offset
    )
    hex_pairs, layout = _hex_pairs(), _uuid_layout()
    pieces = []
    for start in range(0, rows, _UUID_CHUNK_ROWS):
        count = min(_UUID_CHUNK_ROWS, rows - start)
        pairs = pc.take(hex_pairs, raw.slice(16 * start, 16 * count), boundscheck=False)
        digits = pa.Array.from_buffers(pa.uint8(), 32 * count, [None, pairs.buffers()[1]])
        source = pa.concat_arrays([_DASH, digits])
        pieces.append(pc.take(source, layout.slice(0, _UUID_CHARS * count), boundscheck=False))
    text = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
    if storage.null_count == 0:
        validity = None
    elif storage.offset % 8 == 0:
        validity = storage.buffers()[0].slice(storage.offset // 8)
    else:
        validity = pc.is_valid(storage).buffers()[1]
    return pa.Array.from_buffers(
        pa.string(),
        rows,
        [validity, _text_offsets(rows).buffers()[1], text.buffers()[1]],
        null_count=storage.null_count,
    )


@cache
def _hex_pairs() -> pa.Array:
    """Byte value → its two lowercase hex digits, as the uint16 whose bytes they are."""
    return pa.array(
        [int.from_bytes(f"{value:02x}".encode(), sys.byteorder) for value in range(256)],
        pa.uint16(),
    )


@cache
def _uuid_layout() -> pa.Array:
    """For `_UUID_CHUNK_ROWS` rows, where each character of the text comes from in
    ``[dash] + digits``: 0 for a dash, 1 + the digit's index otherwise."""
    first, digit = [], 0
    for position in range(_UUID_CHARS):
        if position not in _UUID_DASHES:
            digit += 1
        first.append(0 if position in _UUID_DASHES else digit)
    layout = pa.array(first, pa.int32())
    done = 1
    while done < _UUID_CHUNK_ROWS:  # doubled: the next rows' digits are 32 × done further on
        shifted = pc.add(layout, pa.scalar(32 * done, pa.int32()))
        layout = pa.concat_arrays([layout, pc.if_else(pc.equal(layout, 0), layout, shifted)])
        done *= 2
    return layout


_offsets_cache: list[pa.Array] = []


def _text_offsets(rows: int) -> pa.Array:
    """0, 36, 72, … for ``rows`` strings (a prefix of an array grown by doubling, kept)."""
    offsets = _offsets_cache[0] if _offsets_cache else pa.array([0, _UUID_CHARS], pa.int32())
    while len(offsets) <= rows:
        done = len(offsets) - 1
        shifted = pc.add(offsets.slice(1), pa.scalar(_UUID_CHARS * done, pa.int32()))
        offsets = pa.concat_arrays([offsets, shifted])
    _offsets_cache[:] = [offsets]
    return offsets
