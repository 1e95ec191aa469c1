"""PostgreSQL values read in a compact wire form and given byob's Arrow form client-side.

Casting to text on the server (``::text``) is exact, but it costs the server CPU on the cores
the transfer shares and the client a parse back. ``numeric(p, s)`` with p ≤ 18 travels instead
as its unscaled bigint (value × 10^s — exact, since a stored value never has more than s
decimals) whose bytes become ``decimal128(p, s)`` as they are. NaN, which such a column
accepts, fails the read (PostgreSQL will not cast it to bigint); the read that then names
the column takes it as 10^p, a value no ``numeric(p, s)`` holds, and refuses it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain.types import ColumnType, Kind

# The widest decimal whose unscaled values, and the NaN marker 10^p, fit in a bigint.
SCALED_MAX_PRECISION = 18


def is_scaled(ctype: ColumnType) -> bool:
    """Whether a decimal column is read as its unscaled bigint."""
    return ctype.kind is Kind.DECIMAL and ctype.precision <= SCALED_MAX_PRECISION


def scaled_select(column_sql: str, ctype: ColumnType, *, mark_nan: bool = False) -> str:
    """The SELECT expression reading a ``numeric(p, s)`` column as value × 10^s.

    A NaN makes PostgreSQL's cast to bigint fail the query ("cannot convert NaN to bigint",
    see ``NAN_CAST_ERROR``), which is the read's own check: a CASE testing every value for
    NaN cost 1.1 s of server CPU per 5M rows of three such columns. ``mark_nan`` reads NaN
    as 10^p instead (a CASE, not least(): least() ignores NULLs, which must stay NULL), for
    the read that names the column after such a failure."""
    scaled = f"({column_sql} * {10**ctype.scale}::numeric)" if ctype.scale else column_sql
    if not mark_nan:
        return f"{scaled}::int8"
    return (
        f"CASE WHEN {column_sql} = 'NaN'::numeric THEN {10**ctype.precision}::int8 "
        f"ELSE {scaled}::int8 END"
    )


# What PostgreSQL says when a scaled read meets a NaN (numeric_int8).
NAN_CAST_ERROR = "cannot convert NaN to bigint"


# Arrow casts a bigint only to a decimal wide enough for any bigint.
_BIGINT_DECIMAL = pa.decimal128(19, 0)


class NotANumberError(ValueError):
    """A NaN (the 10^p marker) in a column whose decimal type cannot hold it."""


def scaled_decimal(array: pa.Array, ctype: ColumnType) -> pa.Array:
    """Unscaled bigints as ``decimal128(p, s)``; ``NotANumberError`` on the NaN marker."""
    top = pc.max(array).as_py()
    if top is not None and top >= 10**ctype.precision:
        raise NotANumberError(f"NaN cannot be written as {ctype}")
    # Same 16-byte little-endian integers; only the declared precision and scale change.
    whole = pc.cast(array, _BIGINT_DECIMAL)
    return pa.Array.from_buffers(
        pa.decimal128(ctype.precision, ctype.scale),
        len(whole),
        whole.buffers(),
        null_count=whole.null_count,
        offset=whole.offset,
    )
