"""Column types: what a source column becomes in Parquet and in Glue/Athena.

The mapping follows shared/reference/aws-facts.md: every engine (Athena, Spark, Trino, DuckDB,
Polars, pyarrow) reads the files the same way. Pure data; the Arrow adapter lives in the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from byob.errors import SchemaChangeError

ATHENA_MAX_DECIMAL_PRECISION = 38


class Kind(StrEnum):
    INT16 = "smallint"
    INT32 = "int"
    INT64 = "bigint"
    FLOAT32 = "float"
    FLOAT64 = "double"
    DECIMAL = "decimal"
    BOOL = "boolean"
    STRING = "string"
    BINARY = "binary"
    DATE = "date"
    TIMESTAMP = "timestamp"  # naive: written as is, not UTC-adjusted
    TIMESTAMPTZ = "timestamptz"  # UTC-adjusted
    LIST = "array"


@dataclass(frozen=True, kw_only=True)
class ColumnType:
    kind: Kind
    precision: int = 0
    scale: int = 0
    element: ColumnType | None = None

    def glue_type(self) -> str:
        """The Hive/Glue type string Athena expects for the Parquet column."""
        if self.kind is Kind.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        if self.kind is Kind.TIMESTAMPTZ:
            return "timestamp"
        if self.kind is Kind.LIST:
            assert self.element is not None
            return f"array<{self.element.glue_type()}>"
        return self.kind.value

    def __str__(self) -> str:
        if self.kind is Kind.TIMESTAMPTZ:
            return "timestamptz"
        if self.kind is Kind.LIST:
            return f"array<{self.element}>"
        return self.glue_type()


INT16 = ColumnType(kind=Kind.INT16)
INT32 = ColumnType(kind=Kind.INT32)
INT64 = ColumnType(kind=Kind.INT64)
FLOAT32 = ColumnType(kind=Kind.FLOAT32)
FLOAT64 = ColumnType(kind=Kind.FLOAT64)
BOOL = ColumnType(kind=Kind.BOOL)
STRING = ColumnType(kind=Kind.STRING)
BINARY = ColumnType(kind=Kind.BINARY)
DATE = ColumnType(kind=Kind.DATE)
TIMESTAMP = ColumnType(kind=Kind.TIMESTAMP)
TIMESTAMPTZ = ColumnType(kind=Kind.TIMESTAMPTZ)


def decimal(precision: int, scale: int) -> ColumnType:
    return ColumnType(kind=Kind.DECIMAL, precision=precision, scale=scale)


def list_of(element: ColumnType) -> ColumnType:
    return ColumnType(kind=Kind.LIST, element=element)


_POSTGRES_SIMPLE: dict[str, ColumnType] = {
    "smallint": INT16,
    "int2": INT16,
    "integer": INT32,
    "int": INT32,
    "int4": INT32,
    "bigint": INT64,
    "int8": INT64,
    "real": FLOAT32,
    "float4": FLOAT32,
    "double precision": FLOAT64,
    "float8": FLOAT64,
    "boolean": BOOL,
    "bool": BOOL,
    "text": STRING,
    "character varying": STRING,
    "varchar": STRING,
    "character": STRING,
    "bpchar": STRING,
    "char": STRING,
    "name": STRING,
    "citext": STRING,
    "uuid": STRING,
    "json": STRING,
    "jsonb": STRING,
    "xml": STRING,
    "inet": STRING,
    "cidr": STRING,
    "macaddr": STRING,
    "money": STRING,
    "time without time zone": STRING,
    "time with time zone": STRING,
    "time": STRING,
    "timetz": STRING,
    "interval": STRING,
    "bytea": BINARY,
    "date": DATE,
    "timestamp without time zone": TIMESTAMP,
    "timestamp": TIMESTAMP,
    "timestamp with time zone": TIMESTAMPTZ,
    "timestamptz": TIMESTAMPTZ,
}

_NUMERIC = re.compile(r"(?:numeric|decimal)(?:\((\d+)(?:,\s*(-?\d+))?\))?")
_PARAMETERISED = re.compile(r"([a-z ]+?)(?:\(\d+(?:,\s*\d+)?\))?((?: with(?:out)? time zone)?)")


def from_postgres(
    type_name: str, *, is_enum: bool = False, decimal_for_unconstrained: int | None = None
) -> ColumnType:
    """Map a PostgreSQL type as ``format_type()`` prints it (e.g. ``numeric(18,2)``,
    ``timestamp(3) with time zone``, ``integer[]``) to byob's column type.

    Unknown types (enums, domains, extensions) become strings: their text form is lossless.
    ``decimal_for_unconstrained`` opts unconstrained numerics into ``decimal(38, s)``; a value
    that does not fit then fails the transfer loudly instead of being rounded.
    """
    name = type_name.strip().lower()
    if name.endswith("[]"):
        return list_of(
            from_postgres(
                name[:-2], is_enum=is_enum, decimal_for_unconstrained=decimal_for_unconstrained
            )
        )
    if is_enum:
        return STRING
    match = _NUMERIC.fullmatch(name)
    if match:
        if match.group(1) is None:
            if decimal_for_unconstrained is not None:
                return decimal(ATHENA_MAX_DECIMAL_PRECISION, decimal_for_unconstrained)
            return STRING
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        if precision > ATHENA_MAX_DECIMAL_PRECISION or scale < 0 or scale > precision:
            return STRING
        return decimal(precision, scale)
    if name in _POSTGRES_SIMPLE:
        return _POSTGRES_SIMPLE[name]
    match = _PARAMETERISED.fullmatch(name)
    if match:
        base = (match.group(1) + match.group(2)).strip()
        if base in _POSTGRES_SIMPLE:
            return _POSTGRES_SIMPLE[base]
    return STRING


_SQLITE_NAMED: dict[str, ColumnType] = {
    "bigint": INT64,
    "integer": INT64,
    "int": INT64,
    "int8": INT64,
    "smallint": INT16,
    "int2": INT16,
    "int4": INT32,
    "mediumint": INT32,
    "real": FLOAT64,
    "double": FLOAT64,
    "double precision": FLOAT64,
    "float": FLOAT64,
    "boolean": BOOL,
    "bool": BOOL,
    "date": DATE,
    "timestamp": TIMESTAMP,
    "datetime": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "timestamp with time zone": TIMESTAMPTZ,
    "blob": BINARY,
    "bytea": BINARY,
}


def from_sqlite(declared: str) -> ColumnType:
    """Map a SQLite declared column type to byob's column type.

    SQLite stores values dynamically; the declared type is the model's contract, and values are
    cast to it while reading. Text-like and unknown declarations become strings.
    """
    name = declared.strip().lower()
    match = _NUMERIC.fullmatch(name)
    if match:
        return from_postgres(name)
    base = re.sub(r"\(.*\)", "", name).strip()
    return _SQLITE_NAMED.get(base, STRING)


_WIDENINGS = {
    (Kind.INT16, Kind.INT32),
    (Kind.INT16, Kind.INT64),
    (Kind.INT32, Kind.INT64),
    (Kind.FLOAT32, Kind.FLOAT64),
}


def check_evolution(column: str, old: ColumnType, new: ColumnType) -> None:
    """Allow only widening type changes; refuse the rest with what changed and what to do."""
    if old == new or (old.kind, new.kind) in _WIDENINGS:
        return
    raise SchemaChangeError(
        f"column {column!r} changed type from {old} to {new}; byob only writes widening "
        "changes (smallint→int→bigint, float→double). Declare the old type with a cast in "
        "the model's query, or add the new type as a new column"
    )


def check_hashing(column: str, *, was: bool, now: bool) -> None:
    """A delivered column keeps its form: hashing a column already delivered in clear (or
    the reverse) would leave one column holding both, and files saying otherwise."""
    if was == now:
        return
    if now:
        raise SchemaChangeError(
            f"column {column!r} was delivered in clear and the model now hashes it: one column "
            "would hold clear values and hashes. Keep it in clear, or deliver the hashes as a "
            f"new column (a model query selecting {column} AS {column}_hash, with hash = "
            f'["{column}_hash"]) and leave {column!r} out'
        )
    raise SchemaChangeError(
        f"column {column!r} was delivered hashed and the model now delivers it in clear: one "
        "column would hold hashes and clear values. Hash it again, or deliver the clear values "
        f"as a new column (a model query selecting {column} AS {column}_clear)"
    )
