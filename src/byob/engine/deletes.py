"""Deletes in the files: the ``_byob_deleted`` column of a model that reports deletes, and the
tombstone rows that stand for hard-deleted keys.

A soft-deleted row is an ordinary row version (its deletion moved the cursor), flagged from its
``deleted_column``. A hard-deleted key arrives as a tombstone: its primary key (and tenant),
the cursor set to the deletion time, ``_byob_deleted = true``, every other column NULL, so
"the newest version of each key" readers (the `_latest` view, the README's queries) see the
deletion as the key's last version."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain.models import DELETED_FLAG, ResolvedModel
from byob.domain.types import Kind
from byob.engine.arrow_types import arrow_schema


def delivered_schema(model: ResolvedModel) -> pa.Schema:
    """The schema of the model's files: the columns read, then ``_byob_deleted`` if any."""
    schema = arrow_schema(model)
    if not model.spec.marks_deletes:
        return schema
    return schema.append(pa.field(DELETED_FLAG, pa.bool_(), nullable=False))


def flag_deleted(batch: pa.RecordBatch, model: ResolvedModel, schema: pa.Schema) -> pa.RecordBatch:
    """Add ``_byob_deleted`` to a batch already cast to the read columns: from the deleted
    column when the model has one (a NULL boolean counts as not deleted), else false."""
    if not model.spec.marks_deletes:
        return batch
    if model.spec.deleted_column:
        column = model.column(model.spec.deleted_column)
        values = batch.column(column.name)
        # A boolean is true once deleted (NULL: not); a timestamp or date is set once deleted.
        bool_column = column.type.kind is Kind.BOOL
        flag = pc.fill_null(values, False) if bool_column else pc.is_valid(values)
    else:
        flag = pa.repeat(False, batch.num_rows)
    return pa.RecordBatch.from_arrays([*batch.columns, flag], schema=schema)


def tombstones(keys: pa.RecordBatch, model: ResolvedModel, schema: pa.Schema) -> pa.RecordBatch:
    """Full-width tombstone rows from a batch of deleted keys (the model's key, tenant and
    cursor columns by their delivered names, already of the delivered types)."""
    arrays = []
    for field in schema:
        if field.name == DELETED_FLAG:
            arrays.append(pa.repeat(True, keys.num_rows))
        elif field.name in keys.schema.names:
            # Deletion times have microseconds; files hold milliseconds (after 1970, so
            # dropping the digits rounds toward the past, as conform does).
            safe = not pa.types.is_timestamp(field.type)
            arrays.append(pc.cast(keys.column(field.name), field.type, safe=safe))
        else:
            arrays.append(pa.nulls(keys.num_rows, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
