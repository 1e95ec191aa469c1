"""Text values of an import file as the declared column types, checked the way PostgreSQL
would check them, so COPY never meets a bad value (it could not say on which line)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain.imports import (
    MAX_REPORTED_PROBLEMS,
    ImportColumn,
    ImportSpec,
    RowProblem,
    ValueCheck,
    shorten,
)
from byob.domain.types import Kind
from byob.errors import FileRejectedError

_ARROW: dict[Kind, pa.DataType] = {
    Kind.INT16: pa.int16(),
    Kind.INT32: pa.int32(),
    Kind.INT64: pa.int64(),
    Kind.FLOAT32: pa.float32(),
    Kind.FLOAT64: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.STRING: pa.string(),
    Kind.DATE: pa.date32(),
    # Microseconds: PostgreSQL's own precision.
    Kind.TIMESTAMP: pa.timestamp("us"),
    Kind.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
}
_TRUE = pa.array(["t", "true", "y", "yes", "on", "1"])
_FALSE = pa.array(["f", "false", "n", "no", "off", "0"])
_UUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


def arrow_type(column: ImportColumn) -> pa.DataType:
    """The Arrow type a column's values are delivered as (json, jsonb and uuid as text)."""
    if column.type.kind is Kind.DECIMAL:
        return pa.decimal128(column.type.precision, column.type.scale)
    return _ARROW[column.type.kind]


def import_schema(spec: ImportSpec) -> pa.Schema:
    """The schema of every batch: the declared columns in declared order, no tenant column."""
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in spec.columns])


def no_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class InvalidValue(Exception):
    """A value does not fit its column; the message is the reason. Internal: the reader turns
    it into a RowProblem with the line."""


def from_text(column: ImportColumn, text: pa.Array) -> pa.Array:
    """Text values as the column's Arrow type; raises InvalidValue if any value does not fit."""
    kind = column.type.kind
    if kind is Kind.STRING:
        if column.check is ValueCheck.UUID:
            ok = pc.match_substring_regex(text, _UUID)
            if not pc.all(pc.or_kleene(ok, pc.is_null(text))).as_py():
                raise InvalidValue("not a UUID: expected 32 hexadecimal digits as 8-4-4-4-12")
            return pc.utf8_lower(text)
        if pc.any(pc.match_substring(text, "\x00")).as_py():
            raise InvalidValue("holds a NUL character, which PostgreSQL text cannot store")
        if column.check is ValueCheck.JSON:
            for value in text.to_pylist():
                if value is not None:
                    _check_json(value)
        if column.max_length is not None and (
            pc.any(pc.greater(pc.utf8_length(text), column.max_length)).as_py()
        ):
            raise InvalidValue(
                f"longer than the {column.max_length} characters of {column.declared}"
            )
        return text
    trimmed = pc.utf8_trim_whitespace(text)
    if kind is Kind.BOOL:
        lower = pc.utf8_lower(trimmed)
        is_true, is_false = pc.is_in(lower, _TRUE), pc.is_in(lower, _FALSE)
        if not pc.all(pc.or_kleene(pc.or_(is_true, is_false), pc.is_null(text))).as_py():
            raise InvalidValue("not a boolean: expected true/false, t/f, yes/no, on/off or 1/0")
        return pc.if_else(is_true, True, pc.if_else(is_false, False, None))
    target = arrow_type(column)
    try:
        typed = pc.cast(trimmed, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if kind is Kind.TIMESTAMPTZ and _is_naive_timestamp(trimmed):
            check_zone(column, zoned=False)
        if kind is Kind.TIMESTAMP and "expected no zone offset" in str(exc):
            check_zone(column, zoned=True)
        raise InvalidValue(_reason(column, str(exc))) from None
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        check_float_range(column, typed, trimmed)
    return typed


def check_zone(column: ImportColumn, *, zoned: bool) -> None:
    """Refuse a timestamp, zoned or naive, that a column of the other sort would have to
    change: timestamptz would guess a naive one's zone, timestamp would drop a zoned one's."""
    if column.type.kind is Kind.TIMESTAMPTZ and not zoned:
        raise InvalidValue("no zone offset: write it as 2024-01-31T12:00:00Z or with +00:00")
    if column.type.kind is Kind.TIMESTAMP and zoned:
        raise InvalidValue("has a zone offset, but the column is a timestamp without time zone")


# Infinity as PostgreSQL and Arrow both spell it (any case): from any other text, an infinite
# value is a number too large for the type, which PostgreSQL refuses.
_INFINITY = r"^[+-]?inf(inity)?$"
_FLOAT_RANGE = {Kind.FLOAT32: "1.4e-45 to 3.4e38", Kind.FLOAT64: "4.9e-324 to 1.8e308"}


def check_float_range(column: ImportColumn, values: pa.Array, source: pa.Array) -> None:
    """Refuse a number beyond the range of the column's float type, which Arrow makes infinity
    or zero while PostgreSQL refuses it; ``source`` is the text or the numbers cast to
    ``values``."""
    # Only an infinity or a zero can be one; the text of the others is not looked at (measured:
    # matching all of it takes 4 times as long as the cast).
    suspect = pc.or_(pc.is_inf(values), pc.equal(values, 0))
    if not pc.any(suspect).as_py():
        return
    values, source = pc.filter(values, suspect), pc.filter(source, suspect)
    if pa.types.is_string(source.type):
        spelled = pc.match_substring_regex(source, _INFINITY, ignore_case=True)
        # A digit other than 0 before any exponent: the number is not zero.
        nonzero = pc.match_substring_regex(source, r"^[^eE]*[1-9]")
        overflow = pc.and_not(pc.is_inf(values), spelled)
    else:
        finite = pc.is_finite(source) if pa.types.is_floating(source.type) else True
        nonzero = pc.not_equal(source, pa.scalar(0, source.type))
        overflow = pc.and_(pc.is_inf(values), finite)
    underflow = pc.and_(pc.equal(values, 0), nonzero)
    if not _all(pc.invert(pc.or_(overflow, underflow))):
        raise InvalidValue(
            f"out of range for {column.declared}: magnitudes from about "
            f"{_FLOAT_RANGE[column.type.kind]}"
        )


# The bytes a column's values may hold for COPY to be given them as the file has them: within
# these, every text from_text accepts PostgreSQL reads as the same value (measured against
# PostgreSQL 15: see tests/integration/test_import_as_is.py). Outside them Arrow accepts what
# PostgreSQL reads otherwise or refuses: whitespace from_text trimmed (NBSP, \v), exponents,
# hexadecimal integers ("0x10"), NaN and Infinity. Floats are never sent as they are.
_AS_IS_BYTES: dict[Kind, bytes] = {
    Kind.INT16: b"0123456789-",
    Kind.INT32: b"0123456789-",
    Kind.INT64: b"0123456789-",
    Kind.DECIMAL: b"0123456789.+-",
    Kind.BOOL: b"01tTrRuUeEyYsSoOnNfFaAlL",
    Kind.DATE: b"0123456789-",
    Kind.TIMESTAMP: b"0123456789-:. T",
    Kind.TIMESTAMPTZ: b"0123456789-:. TZ+",
}
_UUID_BYTES = b"0123456789abcdef-"
_SIGNS = pa.array(["+", "-"])


def copy_reads_as_is(column: ImportColumn, text: pa.Array) -> bool:
    """Whether PostgreSQL reads each of these texts, exactly as the file has them, as the value
    ``from_text`` gave (which must have accepted them), so that COPY can be given the file's
    own bytes. False whenever in doubt: the caller then sends the typed values."""
    kind = column.type.kind
    if kind is Kind.STRING:
        # The text itself is stored; only a UUID is changed by from_text (to lower case).
        return column.check is not ValueCheck.UUID or _only(text, _UUID_BYTES)
    allowed = _AS_IS_BYTES.get(kind)
    if allowed is None or not _only(text, allowed):
        return False
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ) and len(text) > text.null_count:
        # Arrow takes "2026-01-31T12" (the hour alone), PostgreSQL does not: minutes are
        # required, i.e. a colon after YYYY-MM-DDThh. (A date alone goes the typed way too.)
        if not _all_have(text, 13, ":"):
            return False
        if kind is Kind.TIMESTAMPTZ and not _all_have(text, -1, "Z"):
            # Arrow takes zone offsets to ±23:59, PostgreSQL to ±15:59: only ±hh:mm up to 15.
            sign = pc.is_in(pc.utf8_slice_codeunits(text, -6, -5), _SIGNS)
            hours = pc.less_equal(pc.utf8_slice_codeunits(text, -5, -3), "15")
            colon = pc.equal(pc.utf8_slice_codeunits(text, -3, -2), ":")
            zoned = pc.and_(pc.and_(sign, hours), colon)
            if not _all(pc.or_(pc.ends_with(text, "Z"), zoned)):
                return False
    return True


def _all_have(text: pa.Array, index: int, char: str) -> bool:
    """Whether every value (NULLs aside) has ``char`` at ``index`` (negative: from its end).
    Values all of one length (no NULL) are looked at in their bytes, every length-th byte
    (measured: 0.1 ms a block, Arrow's slicing 13 ms)."""
    if text.null_count == 0 and text.type == pa.string():
        lengths = pc.min_max(pc.binary_length(text)).as_py()
        width = lengths["min"]
        if width is not None and width == lengths["max"] and -width <= index < width:
            chars = _chars(text)
            return chars[index % width :: width].count(char.encode()) == len(text)
    at = pc.utf8_slice_codeunits(text, index, index + 1 if index != -1 else 2**31 - 1)
    return _all(pc.equal(at, char))


def _only(text: pa.Array, allowed: bytes) -> bool:
    """Whether the values (NULLs aside) hold no byte but these: one pass in C over the
    array's character data."""
    if len(text) == text.null_count:
        return True
    return text.type == pa.string() and not _chars(text).translate(None, allowed)


def _chars(text: pa.Array) -> bytes:
    """The characters of a string array's values, one after the other."""
    offsets = memoryview(text.buffers()[1]).cast("i")
    start, end = offsets[text.offset], offsets[text.offset + len(text)]
    data = text.buffers()[2]
    return b"" if data is None else bytes(memoryview(data)[start:end])


def _all(mask: pa.Array) -> bool:
    """Whether every value is true, NULLs counting as true (a NULL is sent as NULL)."""
    return pc.all(mask).as_py() is not False


def _is_naive_timestamp(text: pa.Array) -> bool:
    try:
        pc.cast(text, pa.timestamp("us"))
    except pa.ArrowInvalid:
        return False
    return True


def _check_json(value: str) -> None:
    try:
        json.loads(value, parse_constant=no_json_constant)
    except ValueError as exc:
        raise InvalidValue(f"not JSON: {exc}") from None


def _reason(column: ImportColumn, arrow_message: str) -> str:
    kind, declared = column.type.kind, column.declared
    if kind in (Kind.INT16, Kind.INT32, Kind.INT64):
        return f"not a {declared}: expected a whole number within its range"
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        return f"not a {declared}: expected a number"
    if kind is Kind.DECIMAL:
        if "Rescaling" in arrow_message:
            return f"more than {column.type.scale} digits after the point for {declared}"
        if "precision" in arrow_message:
            return f"too many digits for {declared}"
        return f"not a {declared}: expected a number"
    if kind is Kind.DATE:
        return "not a date: expected YYYY-MM-DD"
    if kind is Kind.TIMESTAMPTZ:
        return "not a timestamp: expected ISO 8601 with a zone offset, e.g. 2024-01-31T12:00:00Z"
    if kind is Kind.TIMESTAMP:
        return "not a timestamp: expected ISO 8601, e.g. 2024-01-31 12:00:00"
    return f"not a {declared}"


def locate(
    column: ImportColumn, values: pa.Array, line_of: Callable[[int], int]
) -> list[RowProblem]:
    """The first bad values of a column that failed as a whole, one value at a time."""
    found = []
    for index in range(len(values)):
        if not values[index].is_valid:
            continue
        try:
            from_text(column, values.slice(index, 1))
        except InvalidValue as exc:
            found.append(
                RowProblem(
                    line=line_of(index),
                    column=column.name,
                    value=shorten(values[index].as_py()),
                    reason=str(exc),
                )
            )
            if len(found) >= MAX_REPORTED_PROBLEMS:
                break
    return found


def raise_problems(problems: list[RowProblem]) -> None:
    """Reject the file for its first problems, in line order, if it has any."""
    if problems:
        ordered = sorted(problems, key=lambda p: p.line or 0)
        raise FileRejectedError(tuple(ordered[:MAX_REPORTED_PROBLEMS]))


def rejected(reason: str) -> FileRejectedError:
    """A file refused as a whole (not for one of its rows)."""
    return FileRejectedError((RowProblem(line=None, column=None, value=None, reason=reason),))
