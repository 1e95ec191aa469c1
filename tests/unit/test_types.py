"""Column types: PostgreSQL/SQLite → byob → Glue and Arrow, evolution, and casting batches."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from byob.domain import types as t
from byob.domain.models import ModelSpec, resolve
from byob.domain.types import ColumnType, Kind
from byob.engine.arrow_types import arrow_schema, arrow_type, conform
from byob.errors import SchemaChangeError

# (format_type() text, byob type, Glue type) — the table in shared/reference/aws-facts.md.
POSTGRES_TABLE = [
    ("smallint", t.INT16, "smallint"),
    ("int2", t.INT16, "smallint"),
    ("integer", t.INT32, "int"),
    ("int4", t.INT32, "int"),
    ("bigint", t.INT64, "bigint"),
    ("int8", t.INT64, "bigint"),
    ("numeric(18,2)", t.decimal(18, 2), "decimal(18,2)"),
    ("numeric(18, 2)", t.decimal(18, 2), "decimal(18,2)"),
    ("numeric(10)", t.decimal(10, 0), "decimal(10,0)"),
    ("numeric(38,10)", t.decimal(38, 10), "decimal(38,10)"),
    ("numeric(38,38)", t.decimal(38, 38), "decimal(38,38)"),
    ("decimal(12,4)", t.decimal(12, 4), "decimal(12,4)"),
    ("NUMERIC(5,1)", t.decimal(5, 1), "decimal(5,1)"),
    ("numeric(39,2)", t.STRING, "string"),
    ("numeric(1000,0)", t.STRING, "string"),
    ("numeric(10,-2)", t.STRING, "string"),  # negative scale (PostgreSQL 15+): keep it lossless
    ("numeric", t.STRING, "string"),
    ("decimal", t.STRING, "string"),
    ("real", t.FLOAT32, "float"),
    ("float4", t.FLOAT32, "float"),
    ("double precision", t.FLOAT64, "double"),
    ("float8", t.FLOAT64, "double"),
    ("boolean", t.BOOL, "boolean"),
    ("text", t.STRING, "string"),
    ("character varying", t.STRING, "string"),
    ("character varying(255)", t.STRING, "string"),
    ("varchar(20)", t.STRING, "string"),
    ("character(3)", t.STRING, "string"),
    ("char(1)", t.STRING, "string"),
    ("date", t.DATE, "date"),
    ("timestamp without time zone", t.TIMESTAMP, "timestamp"),
    ("timestamp(3) without time zone", t.TIMESTAMP, "timestamp"),
    ("timestamp(6) without time zone", t.TIMESTAMP, "timestamp"),
    ("timestamp", t.TIMESTAMP, "timestamp"),
    ("timestamp with time zone", t.TIMESTAMPTZ, "timestamp"),
    ("timestamp(3) with time zone", t.TIMESTAMPTZ, "timestamp"),
    ("timestamptz", t.TIMESTAMPTZ, "timestamp"),
    ("time without time zone", t.STRING, "string"),
    ("time(3) without time zone", t.STRING, "string"),
    ("time with time zone", t.STRING, "string"),
    ("interval", t.STRING, "string"),
    ("uuid", t.STRING, "string"),
    ("json", t.STRING, "string"),
    ("jsonb", t.STRING, "string"),
    ("bytea", t.BINARY, "binary"),
    ("integer[]", t.list_of(t.INT32), "array<int>"),
    ("text[]", t.list_of(t.STRING), "array<string>"),
    ("bigint[]", t.list_of(t.INT64), "array<bigint>"),
    ("numeric(10,2)[]", t.list_of(t.decimal(10, 2)), "array<decimal(10,2)>"),
    ("timestamp with time zone[]", t.list_of(t.TIMESTAMPTZ), "array<timestamp>"),
    ("some_extension_type", t.STRING, "string"),
    ("  Integer  ", t.INT32, "int"),
]


@pytest.mark.parametrize(("pg", "expected", "glue"), POSTGRES_TABLE)
def test_from_postgres(pg: str, expected: ColumnType, glue: str) -> None:
    got = t.from_postgres(pg)
    assert got == expected
    assert got.glue_type() == glue


@pytest.mark.parametrize("pg", ["mood", "status_enum", "integer"])
def test_enum_is_string(pg: str) -> None:
    assert t.from_postgres(pg, is_enum=True) == t.STRING


def test_enum_array_is_array_of_string() -> None:
    assert t.from_postgres("mood[]", is_enum=True) == t.list_of(t.STRING)


@pytest.mark.parametrize(("scale", "glue"), [(0, "decimal(38,0)"), (6, "decimal(38,6)")])
def test_unconstrained_numeric_opt_in_decimal(scale: int, glue: str) -> None:
    got = t.from_postgres("numeric", decimal_for_unconstrained=scale)
    assert got == t.decimal(38, scale)
    assert got.glue_type() == glue


def test_opt_in_decimal_does_not_touch_constrained_numerics() -> None:
    assert t.from_postgres("numeric(10,2)", decimal_for_unconstrained=6) == t.decimal(10, 2)
    assert t.from_postgres("numeric(40,2)", decimal_for_unconstrained=6) == t.STRING


@pytest.mark.parametrize(
    ("ctype", "text"),
    [
        (t.TIMESTAMPTZ, "timestamptz"),
        (t.TIMESTAMP, "timestamp"),
        (t.decimal(9, 3), "decimal(9,3)"),
        (t.list_of(t.TIMESTAMPTZ), "array<timestamptz>"),
        (t.list_of(t.list_of(t.INT16)), "array<array<smallint>>"),
    ],
)
def test_str_distinguishes_timestamptz(ctype: ColumnType, text: str) -> None:
    assert str(ctype) == text


# --- SQLite ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("INTEGER", t.INT64),
        ("integer", t.INT64),
        ("BIGINT", t.INT64),
        ("INT", t.INT64),
        ("SMALLINT", t.INT16),
        ("INT4", t.INT32),
        ("REAL", t.FLOAT64),
        ("DOUBLE PRECISION", t.FLOAT64),
        ("FLOAT", t.FLOAT64),
        ("BOOLEAN", t.BOOL),
        ("DATE", t.DATE),
        ("TIMESTAMP", t.TIMESTAMP),
        ("DATETIME", t.TIMESTAMP),
        ("TIMESTAMPTZ", t.TIMESTAMPTZ),
        ("timestamp with time zone", t.TIMESTAMPTZ),
        ("BLOB", t.BINARY),
        ("TEXT", t.STRING),
        ("VARCHAR(20)", t.STRING),
        ("", t.STRING),
        ("whatever", t.STRING),
        ("NUMERIC(18,2)", t.decimal(18, 2)),
        ("DECIMAL(10,4)", t.decimal(10, 4)),
        ("NUMERIC", t.STRING),
        ("NUMERIC(50,2)", t.STRING),
    ],
)
def test_from_sqlite(declared: str, expected: ColumnType) -> None:
    assert t.from_sqlite(declared) == expected


# --- evolution ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (t.INT16, t.INT32),
        (t.INT16, t.INT64),
        (t.INT32, t.INT64),
        (t.FLOAT32, t.FLOAT64),
        (t.STRING, t.STRING),
        (t.decimal(18, 2), t.decimal(18, 2)),
        (t.list_of(t.INT32), t.list_of(t.INT32)),
    ],
)
def test_widening_or_unchanged_is_allowed(old: ColumnType, new: ColumnType) -> None:
    t.check_evolution("amount", old, new)  # does not raise


@pytest.mark.parametrize(
    ("old", "new", "old_text", "new_text"),
    [
        (t.INT64, t.INT32, "bigint", "int"),
        (t.INT32, t.INT16, "int", "smallint"),
        (t.FLOAT64, t.FLOAT32, "double", "float"),
        (t.INT32, t.FLOAT64, "int", "double"),
        (t.INT64, t.STRING, "bigint", "string"),
        (t.STRING, t.INT64, "string", "bigint"),
        (t.decimal(18, 2), t.decimal(18, 4), "decimal(18,2)", "decimal(18,4)"),
        (t.decimal(18, 2), t.STRING, "decimal(18,2)", "string"),
        (t.TIMESTAMP, t.TIMESTAMPTZ, "timestamp", "timestamptz"),
        (t.TIMESTAMPTZ, t.TIMESTAMP, "timestamptz", "timestamp"),
        (t.DATE, t.TIMESTAMP, "date", "timestamp"),
        (t.BOOL, t.INT16, "boolean", "smallint"),
        (t.list_of(t.INT32), t.INT32, "array<int>", "int"),
    ],
)
def test_other_changes_raise_naming_column_and_both_types(
    old: ColumnType, new: ColumnType, old_text: str, new_text: str
) -> None:
    with pytest.raises(SchemaChangeError) as info:
        t.check_evolution("amount", old, new)
    message = info.value.message
    assert "'amount'" in message
    assert f"from {old_text} to {new_text}" in message
    assert info.value.code == "schema_change"


# --- Arrow ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "arrow"),
    [
        (t.INT16, pa.int16()),
        (t.INT32, pa.int32()),
        (t.INT64, pa.int64()),
        (t.FLOAT32, pa.float32()),
        (t.FLOAT64, pa.float64()),
        (t.BOOL, pa.bool_()),
        (t.STRING, pa.string()),
        (t.BINARY, pa.binary()),
        (t.DATE, pa.date32()),
        (t.TIMESTAMP, pa.timestamp("ms")),
        (t.TIMESTAMPTZ, pa.timestamp("ms", tz="UTC")),
        (t.decimal(18, 2), pa.decimal128(18, 2)),
        (t.decimal(38, 38), pa.decimal128(38, 38)),
        (t.list_of(t.INT32), pa.list_(pa.int32())),
        (t.list_of(t.TIMESTAMPTZ), pa.list_(pa.timestamp("ms", tz="UTC"))),
    ],
)
def test_arrow_type(ctype: ColumnType, arrow: pa.DataType) -> None:
    assert arrow_type(ctype) == arrow


def test_every_kind_has_an_arrow_type() -> None:
    for kind in Kind:
        ctype = ColumnType(kind=kind, precision=10, scale=2, element=t.INT32)
        assert isinstance(arrow_type(ctype), pa.DataType)


SOURCE = [
    ("id", t.INT64, False),
    ("tenant", t.STRING, False),
    ("amount", t.decimal(18, 2), True),
    ("created", t.TIMESTAMP, True),
    ("updated_at", t.TIMESTAMPTZ, False),
]
MODEL = resolve(
    ModelSpec(
        name="invoices",
        table="invoices",
        tenant_column="tenant",
        cursor_column="updated_at",
        primary_key=("id",),
    ),
    SOURCE,
)
SCHEMA = arrow_schema(MODEL)


def test_arrow_schema_of_model() -> None:
    assert SCHEMA.names == ["id", "tenant", "amount", "created", "updated_at"]
    assert SCHEMA.field("amount").type == pa.decimal128(18, 2)
    assert SCHEMA.field("updated_at").type == pa.timestamp("ms", tz="UTC")
    assert SCHEMA.metadata == {b"byob.model": b"invoices"}


def _batch(amount: pa.Array, *, unit: str = "us", rows: int = 1) -> pa.RecordBatch:
    moments = [datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)] * rows
    return pa.record_batch(
        [
            pa.array(range(1, rows + 1), pa.int64()),
            pa.array(["acme"] * rows),
            amount,
            pa.array([m.replace(tzinfo=None) for m in moments], pa.timestamp(unit)),
            pa.array(moments, pa.timestamp(unit, tz="UTC")),
        ],
        names=["id", "tenant", "amount", "created", "updated_at"],
    )


def test_conform_truncates_microsecond_timestamps_to_milliseconds() -> None:
    out = conform(_batch(pa.array([Decimal("1.50")], pa.decimal128(18, 2))), SCHEMA, MODEL)
    assert out.schema.equals(SCHEMA)
    assert out.column(3).type == pa.timestamp("ms")
    assert out.column(4).type == pa.timestamp("ms", tz="UTC")
    assert out.column(4)[0].as_py() == datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert out.column(3)[0].as_py() == datetime(2025, 6, 1, 12, 0, 0, 123000)


def test_conform_nanoseconds_too() -> None:
    out = conform(_batch(pa.array([None], pa.decimal128(18, 2)), unit="ns"), SCHEMA, MODEL)
    assert out.column(4).type == pa.timestamp("ms", tz="UTC")


def test_conform_returns_matching_batch_unchanged() -> None:
    batch = conform(_batch(pa.array([Decimal("1.50")], pa.decimal128(18, 2))), SCHEMA, MODEL)
    assert conform(batch, SCHEMA, MODEL) is batch


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.34", Decimal("12.34")),
        ("12.3", Decimal("12.30")),
        ("-0.01", Decimal("-0.01")),
        ("9999999999999999.99", Decimal("9999999999999999.99")),
    ],
)
def test_conform_string_numeric_into_decimal_exactly(text: str, expected: Decimal) -> None:
    out = conform(_batch(pa.array([text])), SCHEMA, MODEL)
    assert out.column(2).type == pa.decimal128(18, 2)
    assert out.column(2)[0].as_py() == expected


@pytest.mark.parametrize(
    "text", ["12.345", "0.001", "NaN", "Infinity", "abc", "99999999999999999.00"]
)
def test_conform_never_rounds_a_decimal(text: str) -> None:
    with pytest.raises(SchemaChangeError) as info:
        conform(_batch(pa.array([text])), SCHEMA, MODEL)
    message = info.value.message
    assert "'invoices'" in message
    assert "'amount'" in message
    assert "decimal(18,2)" in message


def test_conform_refuses_a_lossy_decimal_rescale() -> None:
    with pytest.raises(SchemaChangeError):
        conform(_batch(pa.array([Decimal("1.005")], pa.decimal128(10, 3))), SCHEMA, MODEL)


def test_conform_widens_decimal_scale_exactly() -> None:
    out = conform(_batch(pa.array([Decimal("1.5")], pa.decimal128(10, 1))), SCHEMA, MODEL)
    assert out.column(2)[0].as_py() == Decimal("1.50")


def test_opt_in_decimal_applies_to_array_elements() -> None:
    got = t.from_postgres("numeric[]", decimal_for_unconstrained=6)
    assert got == t.list_of(t.decimal(38, 6))
