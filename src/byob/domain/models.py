"""Models: the tables byob exports, and the schema each one is written with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from byob.domain.types import BOOL, DATE, STRING, TIMESTAMP, TIMESTAMPTZ, ColumnType
from byob.errors import ConfigError

_MODEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")
PARTITION_COLUMN = "dt"
RESERVED_MODEL_NAMES = frozenset({"athena_output", "_manifests", "_schemas"})
# The column byob adds to every file of a model that reports deletes: true on a row whose
# deleted_column says it is deleted, and on a tombstone of a captured hard delete.
DELETED_FLAG = "_byob_deleted"
# Glue's limits: a column comment, a table description.
MAX_COLUMN_DESCRIPTION = 255
MAX_MODEL_DESCRIPTION = 2048
# Athena/Trino reserved words a user will have to quote; a model using them gets a warning.
RESERVED_WORDS = frozenset(
    [
        "all",
        "alter",
        "and",
        "as",
        "between",
        "by",
        "case",
        "cast",
        "constraint",
        "create",
        "cross",
        "cube",
        "current_date",
        "current_time",
        "current_timestamp",
        "current_user",
        "date",
        "deallocate",
        "delete",
        "describe",
        "distinct",
        "drop",
        "else",
        "end",
        "escape",
        "except",
        "execute",
        "exists",
        "extract",
        "false",
        "first",
        "for",
        "from",
        "full",
        "group",
        "grouping",
        "having",
        "in",
        "inner",
        "insert",
        "intersect",
        "into",
        "is",
        "join",
        "last",
        "left",
        "like",
        "localtime",
        "localtimestamp",
        "natural",
        "normalize",
        "not",
        "null",
        "on",
        "or",
        "order",
        "outer",
        "partition",
        "prepare",
        "recursive",
        "right",
        "rollup",
        "select",
        "table",
        "then",
        "timestamp",
        "true",
        "uescape",
        "union",
        "unnest",
        "user",
        "using",
        "values",
        "when",
        "where",
        "with",
    ]
)


class NullCursor(StrEnum):
    """What a transfer does with rows whose cursor column is NULL (they fall in no window)."""

    FAIL = "fail"  # stop before anything is written, saying how many and what to do
    BACKFILL_ONLY = "backfill_only"  # deliver them in backfills and full refreshes
    EXCLUDE = "exclude"  # skip them, counted in the transfer's history and manifest


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A model as declared in the models file: a table, or a query, of the source."""

    name: str
    table: str = ""
    query: str = ""  # a SELECT; byob filters it by tenant and window like a table
    tenant_column: str
    cursor_column: str
    primary_key: tuple[str, ...]
    columns: tuple[str, ...] | None = None  # None: every column of the table
    on_null_cursor: NullCursor = NullCursor.FAIL
    # A soft delete: a boolean that is true, or a timestamp (or date) that is set, once the
    # row is deleted. Its change moves the cursor, so a deletion is delivered as a change.
    deleted_column: str = ""
    # Hard deletes recorded by byob's trigger (`byob models capture-deletes`) are delivered
    # as tombstones in the window their deletion time falls in.
    capture_deletes: bool = False
    # What the vendor shares: a model not offered is never transferred; excluded columns are
    # never read (not in the SELECT); hashed ones are delivered as HMAC-SHA256 hex strings.
    offered: bool = True
    exclude: tuple[str, ...] = ()
    hashed: tuple[str, ...] = ()  # the models file's `hash`
    description: str = ""
    column_descriptions: tuple[tuple[str, str], ...] = ()  # (source column, description)

    def __post_init__(self) -> None:
        where = f"model {self.name!r}"
        if not _MODEL_NAME.fullmatch(self.name):
            raise ConfigError(
                f"{where}: name must be lowercase letters, digits and '_', starting with a "
                "letter (it names the folder and the Athena table)",
                field="name",
            )
        if self.name in RESERVED_MODEL_NAMES:
            raise ConfigError(f"{where}: the name {self.name!r} is reserved", field="name")
        if bool(self.table) == bool(self.query):
            raise ConfigError(
                f'{where}: give either table = "schema.table" or query = "SELECT …"', field="table"
            )
        if self.query and not re.match(r"\s*(select|with)\b", self.query, re.IGNORECASE):
            raise ConfigError(
                f"{where}: query must be a SELECT (or WITH … SELECT) statement", field="query"
            )
        if self.query and ";" in self.query.strip().rstrip(";"):
            raise ConfigError(f"{where}: query must be one statement", field="query")
        for field_name in ("tenant_column", "cursor_column"):
            if not getattr(self, field_name):
                raise ConfigError(f"{where}: {field_name} is required", field=field_name)
        if not self.primary_key:
            raise ConfigError(f"{where}: primary_key is required", field="primary_key")
        if self.capture_deletes and not self.table:
            raise ConfigError(
                f"{where}: capture_deletes needs a table (a trigger on it records the deleted "
                "keys); a query model can report deletes with deleted_column",
                field="capture_deletes",
            )
        self._check_column_policy(where)

    def _check_column_policy(self, where: str) -> None:
        both = sorted(set(self.exclude) & set(self.hashed))
        if both:
            raise ConfigError(
                f"{where}: {', '.join(map(repr, both))} cannot be both excluded and hashed; "
                "an excluded column is never read, so there is nothing to hash",
                field="hash",
            )
        # The columns a transfer cannot do without: the tenant column filters the rows (a
        # source role without SELECT on it could not run the filter), the cursor bounds each
        # window and orders row versions, the primary key tells versions and tombstones of one
        # row apart, and the deleted column sets _byob_deleted.
        needed = {
            **{k: "primary_key" for k in self.primary_key},
            self.tenant_column: "tenant_column",  # a key column may also be the tenant's
            self.cursor_column: "cursor_column",
        }
        if self.deleted_column:
            needed[self.deleted_column] = "deleted_column"
        for name in self.exclude:
            if name in needed:
                raise ConfigError(
                    f"{where}: exclude names {name!r}, its {needed[name]}; transfers must read "
                    "it (the tenant column filters rows, the cursor bounds windows, the primary "
                    "key identifies row versions, the deleted column flags deletions)",
                    field="exclude",
                )
        if self.columns is not None:
            listed = sorted(set(self.exclude) & set(self.columns))
            if listed:
                raise ConfigError(
                    f"{where}: {', '.join(map(repr, listed))} is both in columns and in "
                    "exclude; remove it from one",
                    field="exclude",
                )
        # A primary key column may be hashed: the same value always gives the same hash, so
        # versions and tombstones of a row still share a key. The tenant, cursor and deleted
        # columns may not: the recipient knows its own tenant, and windows, the _latest view
        # and _byob_deleted need the cursor's and the deleted column's real values.
        for name in self.hashed:
            role = needed.get(name)
            if role is not None and role != "primary_key":
                raise ConfigError(
                    f"{where}: hash names {name!r}, its {role}, which is delivered as it is "
                    "(hash a primary key or an ordinary column instead)",
                    field="hash",
                )
        if len(self.description) > MAX_MODEL_DESCRIPTION:
            raise ConfigError(
                f"{where}: description is longer than {MAX_MODEL_DESCRIPTION} characters "
                "(Glue's limit for a table description)",
                field="description",
            )
        for name, text in self.column_descriptions:
            if name in self.exclude:
                raise ConfigError(
                    f"{where}: column_descriptions describes {name!r}, which is excluded",
                    field="column_descriptions",
                )
            if len(text) > MAX_COLUMN_DESCRIPTION:
                raise ConfigError(
                    f"{where}: the description of {name!r} is longer than "
                    f"{MAX_COLUMN_DESCRIPTION} characters (Glue's limit for a column comment)",
                    field="column_descriptions",
                )

    @property
    def marks_deletes(self) -> bool:
        """Whether its files carry the ``_byob_deleted`` column."""
        return bool(self.deleted_column) or self.capture_deletes

    @property
    def source(self) -> str:
        """What the model reads, for messages: the table, or "query"."""
        return self.table or "query"


@dataclass(frozen=True, kw_only=True)
class Column:
    """One source column and the name and type it is written with."""

    source_name: str
    name: str
    type: ColumnType  # as delivered: a hashed column is a string whatever its source type
    nullable: bool = True
    hashed: bool = False
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class ResolvedModel:
    """A model checked against the source: its columns in order, names sanitised."""

    spec: ModelSpec
    columns: tuple[Column, ...]
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    def column(self, source_name: str) -> Column:
        for col in self.columns:
            if col.source_name == source_name:
                return col
        raise KeyError(source_name)

    @property
    def cursor(self) -> Column:
        return self.column(self.spec.cursor_column)

    @property
    def delivered_columns(self) -> tuple[Column, ...]:
        """The columns of its files: those read from the source, then ``_byob_deleted`` for a
        model that reports deletes (computed by byob, so it has no source column)."""
        if not self.spec.marks_deletes:
            return self.columns
        flag = Column(
            source_name="",
            name=DELETED_FLAG,
            type=BOOL,
            nullable=False,
            description="true: the row was deleted in the source (a soft delete or a tombstone)",
        )
        return (*self.columns, flag)

    @property
    def hashed_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.hashed)


def sanitize_names(source_names: list[str], *, reserved: frozenset[str] = frozenset()) -> list[str]:
    """Athena-safe column names: lowercase, [a-z0-9_], unique, never the partition key nor
    one of ``reserved`` (names byob adds itself)."""
    taken: set[str] = set(reserved)
    out: list[str] = []
    for raw in source_names:
        base = re.sub(r"[^a-z0-9_]", "_", raw.lower())[:250] or "col"
        if base == PARTITION_COLUMN:
            base = f"{PARTITION_COLUMN}_source"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        out.append(name)
    return out


def resolve(spec: ModelSpec, source_columns: list[tuple[str, ColumnType, bool]]) -> ResolvedModel:
    """Check a model against the source's columns (name, type, nullable), in source order."""
    where = f"model {spec.name!r}"
    by_name = {name: (ctype, nullable) for name, ctype, nullable in source_columns}
    if not source_columns:
        if spec.query:
            raise ConfigError(f"{where}: its query returns no columns", field="query")
        raise ConfigError(f"{where}: table {spec.table!r} not found in the source", field="table")
    wanted = list(spec.columns) if spec.columns else [name for name, _, _ in source_columns]
    for field_name, names in (
        ("columns", wanted),
        ("tenant_column", [spec.tenant_column]),
        ("cursor_column", [spec.cursor_column]),
        ("primary_key", list(spec.primary_key)),
        ("deleted_column", [spec.deleted_column] if spec.deleted_column else []),
        ("exclude", list(spec.exclude)),
        ("hash", list(spec.hashed)),
        ("column_descriptions", [name for name, _ in spec.column_descriptions]),
    ):
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(
                f"{where}: {field_name} names {', '.join(map(repr, missing))}, which "
                f"{_what(spec)} does not have (it has: {', '.join(by_name)})",
                field=field_name,
            )
    cursor_type = by_name[spec.cursor_column][0]
    if cursor_type not in (TIMESTAMP, TIMESTAMPTZ):
        raise ConfigError(
            f"{where}: cursor_column {spec.cursor_column!r} is {cursor_type}; it must be a "
            "timestamp or timestamptz column that rises whenever a row changes (e.g. updated_at)",
            field="cursor_column",
        )
    if spec.deleted_column:
        deleted_type = by_name[spec.deleted_column][0]
        if deleted_type not in (BOOL, TIMESTAMP, TIMESTAMPTZ, DATE):
            raise ConfigError(
                f"{where}: deleted_column {spec.deleted_column!r} is {deleted_type}; it must be "
                "a boolean that is true once the row is deleted, or a timestamp (or date) that "
                "is set once it is deleted",
                field="deleted_column",
            )
    wanted = [name for name in wanted if name not in spec.exclude]
    for needed in (spec.cursor_column, *spec.primary_key, spec.deleted_column):
        if needed and needed not in wanted:
            wanted.append(needed)
    for field_name, names in (
        ("hash", list(spec.hashed)),
        ("column_descriptions", [name for name, _ in spec.column_descriptions]),
    ):
        absent = [n for n in names if n not in wanted]
        if absent:
            raise ConfigError(
                f"{where}: {field_name} names {', '.join(map(repr, absent))}, which the model "
                "does not deliver (add it to columns)",
                field=field_name,
            )
    reserved = frozenset({DELETED_FLAG}) if spec.marks_deletes else frozenset()
    names = sanitize_names(wanted, reserved=reserved)
    descriptions = dict(spec.column_descriptions)
    columns = tuple(
        Column(
            source_name=src,
            name=name,
            # Hashed: the source's text form of the value is read, and its hash delivered.
            type=STRING if src in spec.hashed else by_name[src][0],
            nullable=by_name[src][1],
            hashed=src in spec.hashed,
            description=descriptions.get(src, ""),
        )
        for src, name in zip(wanted, names, strict=True)
    )
    warnings = [
        f"{where}: column {c.source_name!r} is written as {c.name!r}"
        for c in columns
        if c.name != c.source_name
    ]
    warnings += [
        f"{where}: column {c.name!r} is a reserved word in Athena; queries must quote it"
        for c in columns
        if c.name in RESERVED_WORDS
    ]
    return ResolvedModel(spec=spec, columns=columns, warnings=tuple(warnings))


def _what(spec: ModelSpec) -> str:
    return f"table {spec.table!r}" if spec.table else "its query"
