"""byob column types as Arrow types, and casting source batches to a model's schema."""

from __future__ import annotations

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
        if isinstance(array.type, pa.ExtensionType):
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
