"""Deletes in the models file, in a model's delivered columns, in the `_latest` view and in
the files (the `_byob_deleted` flag and tombstone rows), without a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from byob import models_file
from byob.domain import types as t
from byob.domain.athena import latest_view_sql
from byob.domain.models import DELETED_FLAG, ModelSpec, resolve
from byob.engine.arrow_types import arrow_schema
from byob.engine.deletes import delivered_schema, flag_deleted, tombstones
from byob.errors import ConfigError
from byob.sources.deleted_rows import capture_sql

SOURCE = [
    ("id", t.INT64, False),
    ("tenant_id", t.STRING, False),
    ("amount", t.decimal(18, 2), True),
    ("gone", t.BOOL, True),
    ("deleted_at", t.TIMESTAMPTZ, True),
    ("updated_at", t.TIMESTAMPTZ, False),
]
MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


def parse(**overrides: Any) -> ModelSpec:
    """One model entry read from the models file (an override of None removes the key)."""
    entry = {k: v for k, v in {**MODEL, **overrides}.items() if v is not None}
    raw = {"source": {"url": "postgresql://h/db"}, "models": [entry]}
    return models_file.parse_models_file(raw, origin="byob.toml", base_dir=Path(".")).models[0]


def test_models_file_reads_deleted_column_and_capture_deletes() -> None:
    model = parse(deleted_column="deleted_at", capture_deletes=True)
    assert model.deleted_column == "deleted_at" and model.capture_deletes
    assert model.marks_deletes and not parse().marks_deletes


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"deleted_column": 1}, "deleted_column"),
        ({"capture_deletes": "yes"}, "capture_deletes"),
        ({"capture_deletes": True, "table": None, "query": "SELECT 1"}, "capture_deletes"),
    ],
)
def test_models_file_refuses_bad_delete_settings(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**change)
    assert info.value.field == field, info.value.message


def test_the_deleted_column_is_read_and_the_flag_delivered_last() -> None:
    model = resolve(
        ModelSpec(
            name="invoices",
            table="invoices",
            tenant_column="tenant_id",
            cursor_column="updated_at",
            primary_key=("id",),
            columns=("id", "amount"),
            deleted_column="deleted_at",
        ),
        SOURCE,
    )
    assert [c.name for c in model.columns] == ["id", "amount", "updated_at", "deleted_at"]
    assert model.delivered_columns[-1].name == DELETED_FLAG
    assert model.delivered_columns[-1].type == t.BOOL


def test_a_source_column_named_like_the_flag_is_renamed() -> None:
    source = [*SOURCE, ("_byob_deleted", t.STRING, True)]
    model = resolve(ModelSpec(**_spec_args(deleted_column="gone")), source)
    assert model.column("_byob_deleted").name == "_byob_deleted_2"
    assert [c.name for c in model.delivered_columns].count(DELETED_FLAG) == 1


@pytest.mark.parametrize("column", ["amount", "tenant_id", "id"])
def test_a_deleted_column_must_be_a_boolean_or_a_timestamp(column: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(ModelSpec(**_spec_args(deleted_column=column)), SOURCE)
    assert info.value.field == "deleted_column"


def test_a_missing_deleted_column_is_named() -> None:
    with pytest.raises(ConfigError, match="deleted_column names 'nope'"):
        resolve(ModelSpec(**_spec_args(deleted_column="nope")), SOURCE)


def _spec_args(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "invoices",
        "table": "invoices",
        "tenant_column": "tenant_id",
        "cursor_column": "updated_at",
        "primary_key": ("id",),
        **overrides,
    }


def test_the_flag_comes_from_a_boolean_or_a_timestamp_and_tombstones_are_keys_only() -> None:
    for column, values, expected in [
        ("gone", [True, False, None], [True, False, False]),
        ("deleted_at", [1, None, 2], [True, False, True]),
    ]:
        model = resolve(ModelSpec(**_spec_args(deleted_column=column)), SOURCE)
        read = arrow_schema(model)
        batch = pa.RecordBatch.from_arrays(
            [pa.array(values, f.type) if f.name == column else pa.nulls(3, f.type) for f in read],
            schema=read,
        )
        flagged = flag_deleted(batch, model, delivered_schema(model))
        assert flagged.column(DELETED_FLAG).to_pylist() == expected

    model = resolve(ModelSpec(**_spec_args(capture_deletes=True)), SOURCE)
    keys = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([7], pa.int64()),
            "tenant_id": ["acme"],
            "updated_at": pa.array([1_700_000_000_123_456], pa.timestamp("us", tz="UTC")),
        }
    )
    [row] = tombstones(keys, model, delivered_schema(model)).to_pylist()
    assert row["id"] == 7 and row["tenant_id"] == "acme" and row[DELETED_FLAG] is True
    assert row["updated_at"].microsecond == 123_000  # milliseconds, as every file holds
    assert row["amount"] is None and row["gone"] is None and row["deleted_at"] is None


def test_the_latest_view_leaves_deletions_out_only_when_the_model_reports_them() -> None:
    plain = latest_view_sql(
        schema="s", model="m", columns=["id", "updated_at"], primary_key=["id"], cursor="updated_at"
    )
    assert DELETED_FLAG not in plain
    flagged = latest_view_sql(
        schema="s",
        model="m",
        columns=["id", "updated_at", DELETED_FLAG],
        primary_key=["id"],
        cursor="updated_at",
    )
    assert flagged.endswith('WHERE byob_version_rank = 1 AND NOT coalesce("_byob_deleted", false)')


def test_capture_sql_quotes_names_and_is_idempotent() -> None:
    statements = capture_sql(
        ModelSpec(**_spec_args(table='public.in"voices', primary_key=("id", "it's")))
    )
    trigger = statements[-1]
    assert 'ON "public"."in""voices"' in trigger
    assert "byob_record_delete('invoices', 'tenant_id', 'id', 'it''s')" in trigger
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS byob_deleted_rows")
    assert statements[-2].startswith('DROP TRIGGER IF EXISTS "byob_deletes_invoices"')
