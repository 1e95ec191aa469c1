"""Imports: files a recipient keeps in their bucket, read into a vendor table.

Declared in the models file as ``[[imports]]``. Pure rules: the declaration, its column types,
which keys it takes, and how a rejected file's problems are described. Reading files lives in
``byob.engine.import_files``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from byob.domain.types import ColumnType, Kind, from_postgres
from byob.errors import ConfigError

_IMPORT_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")
# PostgreSQL truncates identifiers at 63 bytes (NAMEDATALEN - 1): a longer name would silently
# name another column.
_MAX_IDENTIFIER_BYTES = 63
DEFAULT_MAX_FILE_BYTES = 5 * 1024**3
MAX_LINE_BYTES = 1024**2
MAX_REPORTED_PROBLEMS = 5
SHOWN_CHANGED_KEYS = 3  # in a run's note; its log line and webhook name more
GZIP_SUFFIX = ".gz"

# PostgreSQL types a file value can be checked against before COPY, by base name. Others (arrays,
# bytea, intervals, extension types) are refused: their values would fail inside COPY, where no
# line number can be reported.
_IMPORTABLE_BASES = frozenset(
    {
        "smallint",
        "int2",
        "integer",
        "int",
        "int4",
        "bigint",
        "int8",
        "real",
        "float4",
        "double precision",
        "float8",
        "numeric",
        "decimal",
        "boolean",
        "bool",
        "text",
        "varchar",
        "character varying",
        "char",
        "character",
        "citext",
        "date",
        "timestamp",
        "timestamp without time zone",
        "timestamptz",
        "timestamp with time zone",
        "json",
        "jsonb",
        "uuid",
    }
)
_TYPE_SHAPE = re.compile(
    r"([a-z][a-z0-9 ]*?)\s*(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?((?: with(?:out)? time zone)?)"
)


class ImportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class OnChange(StrEnum):
    """What happens to an object already imported when its ETag changes (same key, new body)."""

    SKIP = "skip"  # report the change and leave the table as it is (the default)
    REIMPORT = "reimport"  # load the new version as a new file


class ValueCheck(StrEnum):
    """Checks a text value needs beyond its Arrow type, so COPY never sees a bad one."""

    NONE = "none"
    JSON = "json"
    UUID = "uuid"


@dataclass(frozen=True, kw_only=True)
class ImportColumn:
    """A target column: its name, the PostgreSQL type as declared, and byob's type for it."""

    name: str
    declared: str  # normalised: lowercase, single spaces
    type: ColumnType
    check: ValueCheck = ValueCheck.NONE
    max_length: int | None = None  # varchar(n), char(n): characters


@dataclass(frozen=True, kw_only=True)
class ImportSpec:
    """An import as declared in the models file."""

    name: str
    table: str  # [schema.]table in the [source] PostgreSQL database
    tenant_column: str
    format: ImportFormat
    columns: tuple[ImportColumn, ...]
    key_pattern: str = ""  # glob relative to the base path; empty: every key
    csv_delimiter: str = ","
    csv_header: bool = True
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    on_change: OnChange = OnChange.SKIP

    def __post_init__(self) -> None:
        where = f"import {self.name!r}"
        if not _IMPORT_NAME.fullmatch(self.name):
            raise ConfigError(
                f"{where}: name must be lowercase letters, digits and '_', starting with a letter",
                field="name",
            )
        parts = self.table.split(".")
        if len(parts) > 2 or not all(_identifier_ok(p) for p in parts):
            raise ConfigError(
                f"{where}: table must be table or schema.table, each part 1-63 bytes without "
                f'quotes (got {self.table!r}), e.g. table = "public.usage_events"',
                field="table",
            )
        if not _identifier_ok(self.tenant_column):
            raise ConfigError(
                f"{where}: tenant_column must be a column name of 1-63 bytes", field="tenant_column"
            )
        if not self.columns:
            raise ConfigError(
                f'{where}: declare the columns, e.g. columns = {{ account = "text" }}',
                field="columns",
            )
        names = [c.name for c in self.columns]
        for name in names:
            if not _identifier_ok(name):
                raise ConfigError(
                    f"{where}: column name {name!r} must be 1-63 bytes without quotes",
                    field="columns",
                )
        if self.tenant_column in names:
            raise ConfigError(
                f"{where}: remove {self.tenant_column!r} from columns: the tenant column is "
                "filled from the connection's tenant, never from the file",
                field="columns",
            )
        if self.format is ImportFormat.CSV and (
            len(self.csv_delimiter) != 1 or self.csv_delimiter in '"\r\n'
        ):
            raise ConfigError(
                f"{where}: delimiter must be one character other than a quote or a newline "
                f"(got {self.csv_delimiter!r})",
                field="delimiter",
            )
        if self.max_file_bytes < 1:
            raise ConfigError(
                f"{where}: max_file_bytes must be a positive number of bytes",
                field="max_file_bytes",
            )
        if self.key_pattern.startswith("/"):
            raise ConfigError(
                f"{where}: key_pattern is relative to the connection's base path; remove the "
                "leading '/'",
                field="key_pattern",
            )

    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def takes(self, relative_key: str) -> bool:
        """Whether a key (relative to the base path) is a file of this import."""
        if relative_key.endswith("/"):
            return False  # a folder marker
        if not self.key_pattern:
            return True
        return _glob(self.key_pattern).fullmatch(relative_key) is not None

    def size_problem(self, size: int) -> str | None:
        """Why an object of this many bytes is refused, or None."""
        if size > self.max_file_bytes:
            return (
                f"the file has {size} bytes, above this import's max_file_bytes "
                f"({self.max_file_bytes}); split it, or raise max_file_bytes in the models file"
            )
        return None


def is_gzip(key: str) -> bool:
    return key.lower().endswith(GZIP_SUFFIX)


def import_column(name: str, declared: str) -> ImportColumn:
    """A column declared as ``name = "<PostgreSQL type>"``; refuses types byob cannot check."""
    normal = " ".join(declared.strip().lower().split())
    normal = re.sub(r"\s*\(\s*", "(", normal)
    normal = re.sub(r"\s*,\s*", ",", re.sub(r"\s*\)", ")", normal))
    shape = _TYPE_SHAPE.fullmatch(normal)
    base = (shape.group(1) + shape.group(2)).strip() if shape else ""
    if base not in _IMPORTABLE_BASES:
        raise ConfigError(
            f"column {name!r}: type {declared!r} cannot be imported; use one of text, "
            "varchar(n), smallint, integer, bigint, real, double precision, numeric(p,s), "
            "boolean, date, timestamp, timestamptz, json, jsonb, uuid",
            field="columns",
        )
    ctype = from_postgres(normal)
    if base in ("numeric", "decimal") and ctype.kind is not Kind.DECIMAL:
        raise ConfigError(
            f"column {name!r}: declare numeric with precision and scale, e.g. numeric(18,6) "
            f"(got {declared!r}; precision at most 38, scale at most the precision)",
            field="columns",
        )
    check = {"json": ValueCheck.JSON, "jsonb": ValueCheck.JSON, "uuid": ValueCheck.UUID}.get(
        base, ValueCheck.NONE
    )
    length = re.fullmatch(r"(?:character varying|varchar|character|char)\((\d+)\)", normal)
    return ImportColumn(
        name=name,
        declared=normal,
        type=ctype,
        check=check,
        max_length=int(length.group(1)) if length else None,
    )


@dataclass(frozen=True, kw_only=True)
class RowProblem:
    """Why part of a file was refused. ``line`` is the physical line where the record starts
    (1-based, the header counted) for CSV and JSON Lines, the row (1-based) for Parquet; None
    when the problem is the whole file."""

    line: int | None
    column: str | None
    value: str | None  # truncated for display
    reason: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


def shorten(value: str, limit: int = 80) -> str:
    """A value as shown in a problem: at most ``limit`` characters."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _identifier_ok(name: str) -> bool:
    return bool(name) and '"' not in name and len(name.encode()) <= _MAX_IDENTIFIER_BYTES


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` stay within one folder; ``**`` crosses folders."""
    out = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern):
        if token in ("**", "**/"):
            out.append("(?:.*/)?" if token == "**/" else ".*")
        elif token == "*":
            out.append("[^/]*")
        elif token == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out))


@dataclass(frozen=True, kw_only=True)
class ListedObject:
    """An object under the connection's base path, as S3 lists it."""

    key: str  # the full key
    etag: str
    size: int


@dataclass(frozen=True, kw_only=True)
class ImportPlan:
    """What a run does with what it listed, in key order."""

    load: tuple[ListedObject, ...]  # new objects, and changed ones when on_change = reimport
    changed: tuple[ListedObject, ...]  # imported before with another ETag, skipped (reported)
    too_big: tuple[tuple[ListedObject, str], ...]  # refused before a byte is read, with why
    seen: int  # objects of this import (its key pattern) under the base path
    # Rejected by an earlier run under the same ETag: skipped until `byob imports retry`.
    rejected_before: tuple[ListedObject, ...] = ()


def plan_imports(
    spec: ImportSpec,
    listed: list[ListedObject],
    *,
    prefix: str,
    imported: dict[str, str],
    rejected: frozenset[tuple[str, str]] = frozenset(),
) -> ImportPlan:
    """Which listed objects to load: every object of the import (its key pattern, relative to
    ``prefix``) not yet in the ledger under its ETag, in key order. ``imported`` maps keys to
    the ETag they were last imported with; ``rejected`` holds the (key, ETag) pairs an earlier
    run rejected, which wait for a retry (a new ETag is a new file and is tried)."""
    load: list[ListedObject] = []
    changed: list[ListedObject] = []
    too_big: list[tuple[ListedObject, str]] = []
    held: list[ListedObject] = []
    seen = 0
    for obj in sorted(listed, key=lambda o: o.key):
        if not obj.key.startswith(prefix) or not spec.takes(obj.key[len(prefix) :]):
            continue
        seen += 1
        before = imported.get(obj.key)
        if before == obj.etag:
            continue
        if before is not None and spec.on_change is OnChange.SKIP:
            changed.append(obj)
            continue
        if (obj.key, obj.etag) in rejected:
            held.append(obj)
            continue
        problem = spec.size_problem(obj.size)
        if problem is not None:
            too_big.append((obj, problem))
            continue
        load.append(obj)
    return ImportPlan(
        load=tuple(load),
        changed=tuple(changed),
        too_big=tuple(too_big),
        seen=seen,
        rejected_before=tuple(held),
    )


def changed_skipped(keys: list[str], *, shown: int = SHOWN_CHANGED_KEYS) -> str:
    """A run's word on the objects it skipped for having changed since imported (on_change =
    "skip"): which ones (the first ``shown``, then how many more), and how to load them, as
    the tenant's correction is otherwise never loaded."""
    named = ", ".join(repr(key) for key in keys[:shown])
    if len(keys) > shown:
        named += f" and {len(keys) - shown} more"
    them = "it" if len(keys) == 1 else "them"
    return (
        f"{len(keys)} changed since imported, skipped: {named} (to load {them}, upload "
        f'{them} under a new key, or set on_change = "reimport" in this import\'s [[imports]] '
        "entry of the models file, which adds a changed file's rows beside the old ones)"
    )


@dataclass(frozen=True)
class Loaded:
    """One object's load: its rows, or that the ledger had it already."""

    rows: int
    already: bool  # loaded earlier (or by another worker just now): nothing done


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """An object version an import refused, kept so later runs skip it until it is retried
    (or replaced: a new ETag is a new file)."""

    key: str
    etag: str
    size: int
    problems: tuple[RowProblem, ...]
    transfer_id: str | None
    rejected_at: datetime

    def first_problem(self) -> str:
        return str(self.problems[0]) if self.problems else "rejected"


def problems_of(stored: list[dict[str, object]]) -> tuple[RowProblem, ...]:
    """Problems as the state store keeps them (JSON objects) back to records."""
    return tuple(
        RowProblem(
            line=_int_or_none(p.get("line")),
            column=_str_or_none(p.get("column")),
            value=_str_or_none(p.get("value")),
            reason=str(p.get("reason", "")),
        )
        for p in stored
    )


def problem_dict(problem: RowProblem) -> dict[str, object]:
    return {
        "line": problem.line,
        "column": problem.column,
        "value": problem.value,
        "reason": problem.reason,
        "message": str(problem),
    }


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
