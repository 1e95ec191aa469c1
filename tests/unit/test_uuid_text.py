"""uuids read as their 16 bytes (ADBC's Arrow uuid extension type) and printed on the Arrow side
as PostgreSQL's ``uuid::text`` prints them: lowercase, 8-4-4-4-12 (the round trip through
PostgreSQL is in test_type_roundtrip)."""

from __future__ import annotations

import random
import uuid

import pyarrow as pa
import pytest

from byob.domain import types as t
from byob.domain.models import ModelSpec, resolve
from byob.engine.arrow_types import arrow_schema, conform, uuid_text

NIL = uuid.UUID(int=0)
MAX = uuid.UUID(int=2**128 - 1)


def _uuids(values: list[uuid.UUID | None]) -> pa.Array:
    return pa.array([v.bytes if v is not None else None for v in values], pa.uuid())


def _texts(values: list[uuid.UUID | None]) -> list[str | None]:
    return [str(v) if v is not None else None for v in values]


def test_uuids_print_as_postgresql_does() -> None:
    values: list[uuid.UUID | None] = [
        uuid.UUID("123E4567-E89B-12D3-A456-426614174000"),
        NIL,
        MAX,
        None,
        uuid.UUID("00000000-0000-0000-0000-000000000001"),
    ]
    out = uuid_text(_uuids(values))
    out.validate(full=True)
    assert out.type == pa.string()
    assert out.to_pylist() == [
        "123e4567-e89b-12d3-a456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        None,
        "00000000-0000-0000-0000-000000000001",
    ]
    assert out.null_count == 1


def test_plain_16_byte_storage_too() -> None:
    storage = _uuids([MAX, None]).storage
    assert uuid_text(storage).to_pylist() == [str(MAX), None]


def test_every_byte_value_in_every_position() -> None:
    values: list[uuid.UUID | None] = [
        uuid.UUID(bytes=bytes((b + i) % 256 for i in range(16))) for b in range(256)
    ]
    assert uuid_text(_uuids(values)).to_pylist() == _texts(values)


def test_nulls_only_and_empty() -> None:
    assert uuid_text(_uuids([None, None])).to_pylist() == [None, None]
    assert uuid_text(_uuids([])).to_pylist() == []


@pytest.mark.parametrize(("offset", "length"), [(0, 40_000), (3, 35_000), (8, 9), (17, 1)])
def test_slices_keep_their_values_and_nulls(offset: int, length: int) -> None:
    rng = random.Random(offset)
    # More rows than one chunk of the layout, NULLs anywhere (offsets not a multiple of 8).
    values: list[uuid.UUID | None] = [
        None if rng.random() < 0.2 else uuid.UUID(int=rng.getrandbits(128))
        for _ in range(offset + length + 5)
    ]
    out = uuid_text(_uuids(values).slice(offset, length))
    out.validate(full=True)
    assert out.to_pylist() == _texts(values[offset : offset + length])


def test_conform_prints_a_uuid_column_the_model_delivers_as_text() -> None:
    model = resolve(
        ModelSpec(
            name="orders",
            table="orders",
            tenant_column="tenant",
            cursor_column="updated_at",
            primary_key=("id",),
        ),
        [
            ("id", t.STRING, False),
            ("tenant", t.STRING, False),
            ("updated_at", t.TIMESTAMPTZ, False),
        ],
    )
    schema = arrow_schema(model)
    batch = pa.record_batch(
        [_uuids([MAX, None]), pa.array(["acme", "acme"]), pa.array([1, 2], schema[2].type)],
        names=["id", "tenant", "updated_at"],
    )
    out = conform(batch, schema, model)
    assert out.schema.equals(schema)
    assert out.column(0).to_pylist() == [str(MAX), None]
