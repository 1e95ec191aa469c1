"""Read one Parquet file of an import as Arrow record batches of the declared column types: its
columns by name, cast where Arrow can do so without loss, text checked as CSV text is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from byob.domain.imports import MAX_REPORTED_PROBLEMS, ImportColumn, ImportSpec, RowProblem, shorten
from byob.engine.import_values import (
    InvalidValue,
    check_float_range,
    check_zone,
    from_text,
    import_schema,
    raise_problems,
    rejected,
)

_PARQUET_READ_BYTES = 1 << 20


def read_parquet(
    stream: IO[bytes], spec: ImportSpec, batch_rows: int, batch_bytes: int
) -> Iterator[pa.RecordBatch]:
    """Batches of at most ``batch_rows`` rows and about ``batch_bytes`` (uncompressed); the
    stream must be seekable (a Parquet file's index is at its end)."""
    if not stream.seekable():
        raise rejected(
            "a Parquet file must be read from a seekable stream (its index is at the end)"
        )
    try:
        # buffer_size: a column chunk is read through a buffer, not whole (a row group of a
        # few hundred MB would otherwise be held at once).
        parquet = pq.ParquetFile(stream, buffer_size=_PARQUET_READ_BYTES)
    except (pa.ArrowInvalid, OSError) as exc:
        raise rejected(f"not a Parquet file: {exc}") from None
    present = parquet.schema_arrow.names
    missing = [c for c in spec.column_names() if c not in present]
    if missing:
        raise rejected(
            f"the file lacks column(s) {', '.join(map(repr, missing))} (it has: "
            f"{', '.join(present)})"
        )
    schema = import_schema(spec)
    offset = 0
    # Rows per batch from the file's own uncompressed size, so wide rows make short batches.
    meta = parquet.metadata
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > 0 and meta.num_rows > 0:
        batch_rows = max(1, min(batch_rows, batch_bytes * meta.num_rows // unpacked))
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(spec.column_names())):
        arrays, problems = [], []
        for column, field in zip(spec.columns, schema, strict=True):
            array = batch.column(column.name)
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            try:
                arrays.append(_from_parquet(column, field.type, array))
            except InvalidValue as exc:
                problems += _locate_parquet(column, field.type, array, offset, str(exc))
        raise_problems(problems)
        offset += batch.num_rows
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _from_parquet(column: ImportColumn, target: pa.DataType, array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return from_text(column, array.cast(pa.string()))
    if (
        pa.types.is_timestamp(target)
        and (pa.types.is_timestamp(array.type) or pa.types.is_date(array.type))
        and array.null_count < len(array)
    ):
        # Arrow would take a naive time as UTC, and a zoned one as its UTC wall time.
        check_zone(column, zoned=getattr(array.type, "tz", None) is not None)
    if array.type == target:
        return array
    try:
        cast = pc.cast(array, target, safe=True)
        # Arrow rounds a float into a decimal's scale silently: refuse what does not return.
        if (
            pa.types.is_floating(array.type)
            and pa.types.is_decimal(target)
            and pc.all(pc.equal(pc.cast(cast, array.type), array)).as_py() is False
        ):
            raise pa.ArrowInvalid(f"more than {target.scale} digits after the point")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidValue(
            f"{array.type} cannot be read as {column.declared} without loss ({exc})"
        ) from None
    if pa.types.is_floating(target) and (
        pa.types.is_floating(array.type) or pa.types.is_decimal(array.type)
    ):
        check_float_range(column, cast, array)
    return cast


def _locate_parquet(
    column: ImportColumn, target: pa.DataType, array: pa.Array, offset: int, whole: str
) -> list[RowProblem]:
    found = []
    for index in range(len(array)):
        if not array[index].is_valid:
            continue
        try:
            _from_parquet(column, target, array.slice(index, 1))
        except InvalidValue as exc:
            found.append(
                RowProblem(
                    line=offset + index + 1,
                    column=column.name,
                    value=shorten(str(array[index].as_py())),
                    reason=str(exc),
                )
            )
            if len(found) >= MAX_REPORTED_PROBLEMS:
                break
    # A type Arrow cannot cast at all fails every value alike: say it once for the column.
    return found or [RowProblem(line=None, column=column.name, value=None, reason=whole)]
