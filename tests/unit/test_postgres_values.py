"""numeric(p ≤ 18, s) read as its unscaled bigint: the SELECT expression, and the bytes turned
back into exact decimals (the round trip through PostgreSQL is in test_type_roundtrip)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from byob.domain import types as t
from byob.sources.postgres_values import NotANumberError, is_scaled, scaled_decimal, scaled_select


@pytest.mark.parametrize(
    ("ctype", "scaled"),
    [
        (t.decimal(18, 2), True),
        (t.decimal(1, 0), True),
        (t.decimal(18, 18), True),
        (t.decimal(19, 2), False),  # 10^19 does not fit in a bigint
        (t.decimal(38, 10), False),
        (t.STRING, False),
        (t.INT64, False),
    ],
)
def test_only_decimals_whose_unscaled_values_fit_a_bigint_are_scaled(
    ctype: t.ColumnType, scaled: bool
) -> None:
    assert is_scaled(ctype) is scaled


def test_the_select_scales_by_ten_to_the_scale_and_leaves_nan_to_the_bigint_cast() -> None:
    # No per-value NaN test: PostgreSQL's cast refuses NaN itself (NAN_CAST_ERROR).
    assert scaled_select('"amount"', t.decimal(18, 2)) == '("amount" * 100::numeric)::int8'
    assert scaled_select('"qty"', t.decimal(10, 0)) == '"qty"::int8'


def test_the_naming_read_marks_nan_just_above_the_range() -> None:
    assert scaled_select('"amount"', t.decimal(18, 2), mark_nan=True) == (
        "CASE WHEN \"amount\" = 'NaN'::numeric THEN 1000000000000000000::int8 "
        'ELSE ("amount" * 100::numeric)::int8 END'
    )
    assert scaled_select('"qty"', t.decimal(10, 0), mark_nan=True) == (
        'CASE WHEN "qty" = \'NaN\'::numeric THEN 10000000000::int8 ELSE "qty"::int8 END'
    )


def test_unscaled_values_become_the_same_decimals_exactly() -> None:
    values = [999_999_999_999_999_999, -999_999_999_999_999_999, 1230, 0, None, -1]
    out = scaled_decimal(pa.array(values, pa.int64()), t.decimal(18, 2))
    assert out.type == pa.decimal128(18, 2)
    assert out.to_pylist() == [
        Decimal("9999999999999999.99"),
        Decimal("-9999999999999999.99"),
        Decimal("12.30"),
        Decimal("0.00"),
        None,
        Decimal("-0.01"),
    ]


def test_a_sliced_array_keeps_its_offset_and_nulls() -> None:
    array = pa.array([None, 5, None, 7], pa.int64()).slice(1, 3)
    assert scaled_decimal(array, t.decimal(4, 3)).to_pylist() == [
        Decimal("0.005"),
        None,
        Decimal("0.007"),
    ]


def test_the_nan_marker_is_refused() -> None:
    with pytest.raises(NotANumberError, match=r"decimal\(18,2\)"):
        scaled_decimal(pa.array([1, 10**18], pa.int64()), t.decimal(18, 2))
    with pytest.raises(NotANumberError):
        scaled_decimal(pa.array([None, 10**5], pa.int64()), t.decimal(5, 2))
    assert scaled_decimal(pa.array([None], pa.int64()), t.decimal(5, 2)).to_pylist() == [None]
