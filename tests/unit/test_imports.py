"""Imports: ``[[imports]]`` in the models file, the declared types, keys, and the IAM policy."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from byob import models_file
from byob.domain import policies
from byob.domain import types as t
from byob.domain.imports import (
    DEFAULT_MAX_FILE_BYTES,
    ImportFormat,
    ImportSpec,
    ListedObject,
    OnChange,
    RowProblem,
    ValueCheck,
    import_column,
    is_gzip,
    plan_imports,
)
from byob.errors import ConfigError, FileRejectedError

SOURCE = {"url": "postgresql://u@h/db"}
MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": "id",
}
IMPORT: dict[str, Any] = {
    "name": "usage_events",
    "table": "public.usage_events",
    "tenant_column": "tenant_id",
    "format": "csv",
    "columns": {"account": "text", "quantity": "numeric(18,6)", "occurred_at": "timestamptz"},
}


def parse(*imports: dict[str, Any]) -> models_file.ModelsFile:
    raw = {"source": SOURCE, "models": [MODEL], "imports": list(imports)}
    return models_file.parse_models_file(raw, origin="byob.toml", base_dir=Path("."))


def refused(entry: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(entry)
    return info.value


# --- the models file ---------------------------------------------------------------------------


def test_issue_example_parses_from_toml() -> None:
    text = """
    [source]
    url = "postgresql://u@h/db"

    [[models]]
    name = "invoices"
    table = "invoices"
    tenant_column = "tenant_id"
    cursor_column = "updated_at"
    primary_key = "id"

    [[imports]]
    name = "usage_events"
    table = "public.usage_events"
    tenant_column = "tenant_id"
    format = "csv"
    columns = { account = "text", quantity = "numeric(18,6)", occurred_at = "timestamptz" }
    key_pattern = "usage/*.csv.gz"
    delimiter = ";"
    header = false
    max_file_bytes = 1000
    on_change = "reimport"
    """
    cfg = models_file.parse_models_file(tomllib.loads(text), origin="x", base_dir=Path("."))
    (spec,) = cfg.imports
    assert spec == ImportSpec(
        name="usage_events",
        table="public.usage_events",
        tenant_column="tenant_id",
        format=ImportFormat.CSV,
        columns=(
            import_column("account", "text"),
            import_column("quantity", "numeric(18,6)"),
            import_column("occurred_at", "timestamptz"),
        ),
        key_pattern="usage/*.csv.gz",
        csv_delimiter=";",
        csv_header=False,
        max_file_bytes=1000,
        on_change=OnChange.REIMPORT,
    )
    assert spec.column_names() == ("account", "quantity", "occurred_at")  # declared order


def test_defaults() -> None:
    (spec,) = parse(IMPORT).imports
    assert spec.key_pattern == ""
    assert spec.csv_delimiter == ","
    assert spec.csv_header is True
    assert spec.max_file_bytes == DEFAULT_MAX_FILE_BYTES == 5 * 1024**3
    assert spec.on_change is OnChange.SKIP


def test_models_only_file_is_unchanged() -> None:
    raw = {"source": SOURCE, "models": [MODEL]}
    cfg = models_file.parse_models_file(raw, origin="byob.toml", base_dir=Path("."))
    assert cfg.imports == ()
    assert [m.name for m in cfg.models] == ["invoices"]


def test_import_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="import names must be unique: usage_events") as info:
        parse(IMPORT, {**IMPORT, "table": "other"})
    assert info.value.field == "name"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"table": None}, "table", "table is required"),
        ({"format": "xml"}, "format", "format must be one of csv, jsonl, parquet"),
        ({"format": "csv.gz"}, "format", "gzip is read from a key ending in .gz"),
        ({"tenant_column": ""}, "tenant_column", "tenant_column is required"),
        ({"columns": {}}, "columns", "columns must map column names to PostgreSQL types"),
        ({"columns": ["a"]}, "columns", "columns must map"),
        ({"columns": {"a": 1}}, "columns", "columns must map"),
        ({"columns": {"a": "int[]"}}, "columns", "type 'int[]' cannot be imported"),
        ({"columns": {"a": "bytea"}}, "columns", "type 'bytea' cannot be imported"),
        ({"columns": {"a": "numeric"}}, "columns", "declare numeric with precision and scale"),
        ({"columns": {"a": "numeric(50,2)"}}, "columns", "precision at most 38"),
        (
            {"columns": {"tenant_id": "text", "a": "text"}},
            "columns",
            "remove 'tenant_id' from columns",
        ),
        ({"columns": {"x" * 64: "text"}}, "columns", "must be 1-63 bytes"),
        ({"table": "a.b.c"}, "table", "table must be table or schema.table"),
        ({"table": 'public."x"'}, "table", "without quotes"),
        ({"name": "Usage"}, "name", "name must be lowercase"),
        ({"on_change": "overwrite"}, "on_change", "on_change must be one of skip, reimport"),
        ({"max_file_bytes": 0}, "max_file_bytes", "positive whole number"),
        ({"max_file_bytes": "5GB"}, "max_file_bytes", "positive whole number"),
        ({"delimiter": ";;"}, "delimiter", "delimiter must be one character"),
        ({"delimiter": '"'}, "delimiter", "delimiter must be one character"),
        ({"header": "yes"}, "header", "header must be true or false"),
        ({"format": "jsonl", "header": False}, "format", "apply to csv only"),
        ({"key_pattern": "/usage/*"}, "key_pattern", "relative to the connection's base path"),
        ({"key_patern": "x"}, "key_patern", "unknown keys key_patern"),
    ],
)
def test_bad_import_names_import_and_field(change: dict[str, Any], field: str, says: str) -> None:
    entry = {k: v for k, v in {**IMPORT, **change}.items() if v is not None}
    error = refused(entry)
    assert error.field == field
    assert says in error.message
    assert error.message.startswith("byob.toml: imports[0]")


def test_imports_must_be_tables() -> None:
    raw = {"source": SOURCE, "models": [MODEL], "imports": {"name": "x"}}
    with pytest.raises(ConfigError, match=r"\[\[imports\]\]"):
        models_file.parse_models_file(raw, origin="byob.toml", base_dir=Path("."))


# --- declared types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "normal", "ctype", "check"),
    [
        ("text", "text", t.STRING, ValueCheck.NONE),
        ("varchar(20)", "varchar(20)", t.STRING, ValueCheck.NONE),
        ("Character Varying ( 20 )", "character varying(20)", t.STRING, ValueCheck.NONE),
        ("smallint", "smallint", t.INT16, ValueCheck.NONE),
        ("integer", "integer", t.INT32, ValueCheck.NONE),
        ("bigint", "bigint", t.INT64, ValueCheck.NONE),
        ("int8", "int8", t.INT64, ValueCheck.NONE),
        ("real", "real", t.FLOAT32, ValueCheck.NONE),
        ("double  precision", "double precision", t.FLOAT64, ValueCheck.NONE),
        ("numeric(18, 6)", "numeric(18,6)", t.decimal(18, 6), ValueCheck.NONE),
        ("decimal(10)", "decimal(10)", t.decimal(10, 0), ValueCheck.NONE),
        ("boolean", "boolean", t.BOOL, ValueCheck.NONE),
        ("date", "date", t.DATE, ValueCheck.NONE),
        ("timestamp", "timestamp", t.TIMESTAMP, ValueCheck.NONE),
        ("timestamptz", "timestamptz", t.TIMESTAMPTZ, ValueCheck.NONE),
        (
            "timestamp(3) with time zone",
            "timestamp(3) with time zone",
            t.TIMESTAMPTZ,
            ValueCheck.NONE,
        ),
        ("jsonb", "jsonb", t.STRING, ValueCheck.JSON),
        ("json", "json", t.STRING, ValueCheck.JSON),
        ("uuid", "uuid", t.STRING, ValueCheck.UUID),
    ],
)
def test_import_column_types(
    declared: str, normal: str, ctype: t.ColumnType, check: ValueCheck
) -> None:
    column = import_column("c", declared)
    assert (column.declared, column.type, column.check) == (normal, ctype, check)


@pytest.mark.parametrize(
    "declared", ["interval", "bytea", "money", "hstore", "text[]", "int4range", ""]
)
def test_import_column_refuses_types_it_cannot_check(declared: str) -> None:
    with pytest.raises(ConfigError, match="cannot be imported; use one of text"):
        import_column("c", declared)


# --- keys, sizes, problems ---------------------------------------------------------------------


def spec(**change: Any) -> ImportSpec:
    (parsed,) = parse({**IMPORT, **change}).imports
    return parsed


@pytest.mark.parametrize(
    ("pattern", "key", "takes"),
    [
        ("", "a.csv", True),
        ("", "deep/a.csv", True),
        ("", "folder/", False),
        ("usage/*.csv.gz", "usage/2024.csv.gz", True),
        ("usage/*.csv.gz", "usage/2024.csv", False),
        ("usage/*.csv.gz", "usage/x/2024.csv.gz", False),
        ("usage/*.csv.gz", "old/usage/2024.csv.gz", False),
        ("usage/**/*.csv", "usage/2024/01/a.csv", True),
        ("usage/**/*.csv", "usage/a.csv", True),
        ("day-?.csv", "day-1.csv", True),
        ("day-?.csv", "day-12.csv", False),
        ("a+b.csv", "a+b.csv", True),
        ("a+b.csv", "aab.csv", False),
    ],
)
def test_key_pattern(pattern: str, key: str, takes: bool) -> None:
    assert spec(key_pattern=pattern).takes(key) is takes


def test_gzip_is_read_from_the_key() -> None:
    assert is_gzip("usage/a.csv.gz") and is_gzip("A.JSONL.GZ")
    assert not is_gzip("usage/a.csv") and not is_gzip("gz/a.csv")


def test_size_problem() -> None:
    limited = spec(max_file_bytes=100)
    assert limited.size_problem(100) is None
    problem = limited.size_problem(101)
    assert problem is not None
    assert "101 bytes, above this import's max_file_bytes (100)" in problem


def test_file_rejected_error_lists_problems() -> None:
    error = FileRejectedError(
        (
            RowProblem(line=4, column="quantity", value="abc", reason="not a number"),
            RowProblem(line=None, column=None, value=None, reason="cut short"),
        )
    )
    assert error.code == "file_rejected"
    assert error.message == (
        "file rejected: line 4, column 'quantity', value 'abc': not a number; cut short"
    )


# --- the permissions policy --------------------------------------------------------------------


def test_import_policy_golden_with_base_path() -> None:
    assert policies.import_permissions_policy("bkt", "exports/billing/") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ByobListBasePath",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::bkt",
                "Condition": {
                    "StringLike": {"s3:prefix": ["exports/billing/", "exports/billing/*"]}
                },
            },
            {
                "Sid": "ByobReadUnderBasePath",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bkt/exports/billing/*",
            },
        ],
    }


def test_import_policy_golden_without_base_path() -> None:
    assert policies.import_permissions_policy("bkt", "") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ByobListBasePath",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::bkt",
            },
            {
                "Sid": "ByobReadUnderBasePath",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bkt/*",
            },
        ],
    }


def test_import_policy_grants_no_write() -> None:
    document = policies.import_permissions_policy("bkt", "base")
    actions = [s["Action"] for s in document["Statement"]]
    assert actions == ["s3:ListBucket", "s3:GetObject"]


# -- what a run loads ---------------------------------------------------------------------------


def listed(key: str, etag: str = "e1", size: int = 10) -> ListedObject:
    return ListedObject(key=key, etag=etag, size=size)


def test_a_run_loads_new_objects_of_the_import_in_key_order() -> None:
    plan = plan_imports(
        spec(key_pattern="usage/*.csv"),
        [
            listed("in/usage/b.csv"),
            listed("in/usage/a.csv"),
            listed("in/other/c.csv"),
            listed("in/usage/"),
            listed("elsewhere/usage/d.csv"),
        ],
        prefix="in/",
        imported={},
    )
    assert [o.key for o in plan.load] == ["in/usage/a.csv", "in/usage/b.csv"]
    assert plan.seen == 2 and plan.changed == () and plan.too_big == ()


def test_imported_objects_are_skipped_and_changed_ones_reported_or_reloaded() -> None:
    objects = [listed("in/a.csv"), listed("in/b.csv", etag="e2"), listed("in/c.csv")]
    imported = {"in/a.csv": "e1", "in/b.csv": "e1"}
    skip = plan_imports(spec(), objects, prefix="in/", imported=imported)
    assert [o.key for o in skip.load] == ["in/c.csv"]
    assert [o.key for o in skip.changed] == ["in/b.csv"]
    again = plan_imports(
        spec(on_change=OnChange.REIMPORT), objects, prefix="in/", imported=imported
    )
    assert [o.key for o in again.load] == ["in/b.csv", "in/c.csv"] and again.changed == ()


def test_an_object_above_max_file_bytes_is_refused_before_reading() -> None:
    plan = plan_imports(
        spec(max_file_bytes=100),
        [listed("in/a.csv", size=101), listed("in/b.csv", size=100)],
        prefix="in/",
        imported={},
    )
    assert [o.key for o in plan.load] == ["in/b.csv"]
    [(obj, why)] = plan.too_big
    assert obj.key == "in/a.csv" and "above this import's max_file_bytes (100)" in why


def test_a_runs_note_names_the_changed_files_it_skipped_and_how_to_load_them() -> None:
    from byob.engine.importer import ImportRun
    from byob.services.imports import summary

    one = ImportRun(seen=2, imported=["in/a.csv"], rows=3, changed=["in/b.csv"])
    assert summary(one) == (
        "2 files seen: 1 imported (3 rows), 1 changed since imported, skipped: 'in/b.csv' "
        '(to load it, upload it under a new key, or set on_change = "reimport" in this '
        "import's [[imports]] entry of the models file, which adds a changed file's rows "
        "beside the old ones)"
    )
    many = summary(ImportRun(seen=5, changed=[f"in/{n}.csv" for n in range(5)]))
    assert (
        "5 changed since imported, skipped: 'in/0.csv', 'in/1.csv', 'in/2.csv' and 2 more "
        "(to load them, upload them under a new key, or set on_change" in many
    )
