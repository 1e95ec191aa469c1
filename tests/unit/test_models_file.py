"""Models (names, resolution against the source) and the TOML models file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from byob import models_file
from byob.domain import types as t
from byob.domain.models import ModelSpec, NullCursor, resolve, sanitize_names
from byob.errors import ConfigError

# --- sanitize_names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (["id", "Amount", "createdAt"], ["id", "amount", "createdat"]),
        (["first name", "e-mail", "a.b", "x/y"], ["first_name", "e_mail", "a_b", "x_y"]),
        (["Prix €", "naïve"], ["prix__", "na_ve"]),
        (["dt"], ["dt_source"]),
        (["DT"], ["dt_source"]),
        (["dt", "dt_source"], ["dt_source", "dt_source_2"]),
        (["a", "A"], ["a", "a_2"]),
        (["a b", "a-b", "a_b", "A B"], ["a_b", "a_b_2", "a_b_3", "a_b_4"]),
        (["a", "A", "a_2"], ["a", "a_2", "a_2_2"]),
        ([""], ["col"]),
        (["", ""], ["col", "col_2"]),
        (["already_ok_123"], ["already_ok_123"]),
    ],
)
def test_sanitize_names(raw: list[str], clean: list[str]) -> None:
    assert sanitize_names(raw) == clean


def test_sanitize_names_truncates_long_names() -> None:
    long = "x" * 400
    first, second = sanitize_names([long, long.upper()])
    assert first == "x" * 250
    assert second == "x" * 250 + "_2"
    assert len(second.encode()) <= 255


@settings(database=None)
@given(st.lists(st.text(max_size=30), max_size=30))
def test_sanitize_names_property_unique_and_athena_safe(raw: list[str]) -> None:
    out = sanitize_names(raw)
    assert len(out) == len(raw)
    assert len(set(out)) == len(out)
    for name in out:
        assert re.fullmatch(r"[a-z0-9_]{1,255}", name), name
        assert name != "dt"


@settings(database=None)
@given(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True), unique=True, max_size=20))
def test_sanitize_names_property_keeps_clean_unique_names(raw: list[str]) -> None:
    assume("dt" not in raw and "dt_source" not in raw)
    assert sanitize_names(raw) == raw


# --- resolve --------------------------------------------------------------------------------

SOURCE: list[tuple[str, t.ColumnType, bool]] = [
    ("id", t.INT64, False),
    ("tenant_id", t.STRING, False),
    ("Amount", t.decimal(18, 2), True),
    ("dt", t.DATE, True),
    ("user", t.STRING, True),
    ("created_on", t.DATE, True),
    ("updated_at", t.TIMESTAMPTZ, False),
]


def spec(**overrides: Any) -> ModelSpec:
    args: dict[str, Any] = {
        "name": "invoices",
        "table": "public.invoices",
        "tenant_column": "tenant_id",
        "cursor_column": "updated_at",
        "primary_key": ("id",),
    }
    args.update(overrides)
    return ModelSpec(**args)


def test_resolve_every_column_in_source_order() -> None:
    model = resolve(spec(), SOURCE)
    assert [c.source_name for c in model.columns] == [name for name, _, _ in SOURCE]
    assert [c.name for c in model.columns] == [
        "id",
        "tenant_id",
        "amount",
        "dt_source",
        "user",
        "created_on",
        "updated_at",
    ]
    assert model.cursor.type == t.TIMESTAMPTZ
    assert model.column("Amount").type == t.decimal(18, 2)
    assert model.column("id").nullable is False
    assert model.name == "invoices"
    with pytest.raises(KeyError):
        model.column("missing")


def test_resolve_warns_on_renames_and_reserved_words() -> None:
    model = resolve(spec(), SOURCE)
    text = "\n".join(model.warnings)
    assert "'Amount' is written as 'amount'" in text
    assert "'dt' is written as 'dt_source'" in text
    assert "'user' is a reserved word" in text
    assert all(w.startswith("model 'invoices'") for w in model.warnings)


def test_resolve_without_warnings_for_clean_names() -> None:
    model = resolve(spec(columns=("id", "tenant_id", "updated_at")), SOURCE)
    assert model.warnings == ()


def test_resolve_selected_columns_always_include_cursor_and_key() -> None:
    model = resolve(spec(columns=("tenant_id", "Amount")), SOURCE)
    assert [c.source_name for c in model.columns] == ["tenant_id", "Amount", "updated_at", "id"]


def test_resolve_accepts_naive_timestamp_cursor() -> None:
    source = [("id", t.INT64, False), ("t", t.STRING, False), ("ts", t.TIMESTAMP, False)]
    model = resolve(spec(tenant_column="t", cursor_column="ts"), source)
    assert model.cursor.type == t.TIMESTAMP


@pytest.mark.parametrize(
    ("overrides", "field", "needle"),
    [
        ({"columns": ("id", "nope")}, "columns", "'nope'"),
        ({"tenant_column": "tenant"}, "tenant_column", "'tenant'"),
        ({"cursor_column": "modified"}, "cursor_column", "'modified'"),
        ({"primary_key": ("id", "line_no")}, "primary_key", "'line_no'"),
    ],
)
def test_resolve_missing_columns_name_model_and_field(
    overrides: dict[str, Any], field: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(spec(**overrides), SOURCE)
    assert info.value.field == field
    assert "model 'invoices'" in info.value.message
    assert field in info.value.message
    assert needle in info.value.message
    assert "'public.invoices'" in info.value.message


def test_resolve_missing_table() -> None:
    with pytest.raises(ConfigError) as info:
        resolve(spec(), [])
    assert info.value.field == "table"
    assert "model 'invoices'" in info.value.message
    assert "'public.invoices'" in info.value.message


@pytest.mark.parametrize("cursor", ["created_on", "id", "tenant_id"])
def test_resolve_refuses_a_non_timestamp_cursor(cursor: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(spec(cursor_column=cursor), SOURCE)
    assert info.value.field == "cursor_column"
    assert "model 'invoices'" in info.value.message
    assert repr(cursor) in info.value.message
    assert "timestamp" in info.value.message


# --- ModelSpec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Invoices"}, "name"),
        ({"name": "1invoices"}, "name"),
        ({"name": "in-voices"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "athena_output"}, "name"),
        ({"table": ""}, "table"),
        ({"tenant_column": ""}, "tenant_column"),
        ({"cursor_column": ""}, "cursor_column"),
        ({"primary_key": ()}, "primary_key"),
    ],
)
def test_model_spec_rules(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        spec(**overrides)
    assert info.value.field == field


# --- config file ----------------------------------------------------------------------------

MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": "id",
}


def parse(raw: dict[str, Any], base_dir: Path = Path("/cfg")) -> models_file.ModelsFile:
    return models_file.parse_models_file(raw, origin="byob.toml", base_dir=base_dir)


def config_error(raw: dict[str, Any], field: str | None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    assert info.value.field == field, info.value.message
    assert info.value.message.startswith("byob.toml")
    return info.value


def test_parse_config() -> None:
    cfg = parse({"source": {"url": "postgresql://u@h/db"}, "models": [MODEL]})
    assert cfg.source.url == "postgresql://u@h/db"
    (model,) = cfg.models
    assert model == ModelSpec(
        name="invoices",
        table="invoices",
        tenant_column="tenant_id",
        cursor_column="updated_at",
        primary_key=("id",),
    )
    assert cfg.model("invoices") is model


def test_parse_config_with_columns_and_composite_key() -> None:
    entry = {**MODEL, "primary_key": ["id", "line"], "columns": ["id", "line", "amount"]}
    (model,) = parse({"source": {"url": "postgres://h/db"}, "models": [entry]}).models
    assert model.primary_key == ("id", "line")
    assert model.columns == ("id", "line", "amount")


def test_unknown_model_lookup_names_the_known_ones() -> None:
    cfg = parse({"source": {"url": "postgresql://h/db"}, "models": [MODEL]})
    with pytest.raises(ConfigError, match="invoices") as info:
        cfg.model("orders")
    assert info.value.field == "model"
    assert "'orders'" in info.value.message


@pytest.mark.parametrize(
    "raw",
    [
        {"models": [MODEL]},
        {"source": {}, "models": [MODEL]},
        {"source": "postgresql://h/db", "models": [MODEL]},
        {"source": {"url": ""}, "models": [MODEL]},
    ],
)
def test_missing_source(raw: dict[str, Any]) -> None:
    err = config_error(raw, "source")
    assert "[source]" in err.message


def test_unsupported_source_url() -> None:
    err = config_error({"source": {"url": "mysql://h/db"}, "models": [MODEL]}, "source.url")
    assert "postgresql://" in err.message


@pytest.mark.parametrize("models", [None, [], "invoices"])
def test_models_required(models: Any) -> None:
    raw: dict[str, Any] = {"source": {"url": "postgresql://h/db"}}
    if models is not None:
        raw["models"] = models
    config_error(raw, "models")


def test_unknown_model_keys() -> None:
    entry = {**MODEL, "colums": ["id"], "zzz": 1}
    err = config_error({"source": {"url": "postgresql://h/db"}, "models": [entry]}, "colums")
    assert "colums" in err.message and "zzz" in err.message
    assert "models[0]" in err.message


def test_duplicate_model_names() -> None:
    err = config_error(
        {"source": {"url": "postgresql://h/db"}, "models": [MODEL, {**MODEL, "table": "b"}]}, "name"
    )
    assert "invoices" in err.message
    assert "unique" in err.message


def test_reserved_model_name() -> None:
    entry = {**MODEL, "name": "athena_output"}
    err = config_error({"source": {"url": "postgresql://h/db"}, "models": [entry]}, "name")
    assert "athena_output" in err.message
    assert "reserved" in err.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"table": None}, "table"),
        ({"name": 5}, "name"),
        ({"tenant_column": ""}, "tenant_column"),
        ({"cursor_column": None}, "cursor_column"),
        ({"primary_key": None}, "primary_key"),
        ({"primary_key": []}, "primary_key"),
        ({"primary_key": [1]}, "primary_key"),
        ({"columns": []}, "columns"),
        ({"columns": "id"}, "columns"),
        ({"name": "Bad-Name"}, "name"),
    ],
)
def test_model_entry_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    entry = {k: v for k, v in {**MODEL, **change}.items() if v is not None}
    err = config_error({"source": {"url": "postgresql://h/db"}, "models": [entry]}, field)
    assert "models[0]" in err.message
    assert field in err.message


def test_model_entry_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]"):
        parse({"source": {"url": "postgresql://h/db"}, "models": ["invoices"]})


TOML = """
[source]
{source}

[[models]]
name = "invoices"
table = "invoices"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = ["id"]
"""


def test_load_config_sqlite_path_is_relative_to_the_file(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "conf"
    cfg_dir.mkdir()
    path = cfg_dir / "byob.toml"
    path.write_text(TOML.format(source='path = "../data/app.sqlite"'))
    cfg = models_file.load_models_file(path)
    expected = (tmp_path / "data" / "app.sqlite").resolve()
    assert cfg.source.url == f"sqlite:///{expected}"
    assert cfg.source.url.startswith("sqlite:////")  # absolute path after the three slashes


def test_load_config_sqlite_absolute_path(tmp_path: Path) -> None:
    db = (tmp_path / "x.sqlite").resolve()
    path = tmp_path / "byob.toml"
    path.write_text(TOML.format(source=f'path = "{db}"'))
    assert models_file.load_models_file(path).source.url == f"sqlite:///{db}"


def test_load_config_url_wins(tmp_path: Path) -> None:
    path = tmp_path / "byob.toml"
    path.write_text(TOML.format(source='url = "postgresql://u@h/db"\npath = "x.sqlite"'))
    assert models_file.load_models_file(path).source.url == "postgresql://u@h/db"


def test_load_config_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "byob.toml"
    path.write_text("[source\nurl = 1")
    with pytest.raises(ConfigError) as info:
        models_file.load_models_file(path)
    assert str(path) in info.value.message
    assert "not valid TOML" in info.value.message


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        models_file.load_models_file(path)
    assert str(path) in info.value.message
    assert "not found" in info.value.message


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "byob.toml"
    path.write_text(TOML.format(source='url = "postgresql://h/db"').replace("invoices", "Bad!", 1))
    with pytest.raises(ConfigError) as info:
        models_file.load_models_file(path)
    assert info.value.field == "name"
    assert str(path) in info.value.message


@pytest.mark.parametrize("source", [{"path": 5}, {"url": 5}, {"url": ["postgresql://h/db"]}])
def test_non_text_source_values_are_config_errors(source: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"source": source, "models": [MODEL]})
    assert info.value.field in ("source", "source.url", "source.path")


def test_a_query_model_and_its_null_cursor_choice() -> None:
    query = {k: v for k, v in MODEL.items() if k != "table"} | {
        "query": "SELECT id, tenant_id, coalesce(updated_at, 'epoch') AS updated_at FROM t;",
        "on_null_cursor": "exclude",
    }
    (model,) = parse({"source": {"url": "postgresql://u@h/db"}, "models": [query]}).models
    assert model.table == "" and model.query.endswith("FROM t")  # the trailing ; dropped
    assert model.on_null_cursor is NullCursor.EXCLUDE and model.source == "query"
    assert parse({"source": {"url": "sqlite:///x"}, "models": [MODEL]}).models[
        0
    ].on_null_cursor is (NullCursor.FAIL)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"query": "SELECT 1"}, "table", "either table"),  # both
        ({"table": None}, "table", "either table"),  # neither
        ({"table": None, "query": "DELETE FROM t"}, "query", "must be a SELECT"),
        ({"table": None, "query": "SELECT 1; DROP TABLE t"}, "query", "one statement"),
        ({"table": None, "query": "  "}, "query", "non-empty text"),
        ({"on_null_cursor": "skip"}, "on_null_cursor", "fail, backfill_only, exclude"),
    ],
)
def test_bad_query_and_null_cursor_options_name_the_model_and_key(
    changes: dict[str, Any], field: str, words: str
) -> None:
    model = {k: v for k, v in (MODEL | changes).items() if v is not None}
    error = config_error({"source": {"url": "sqlite:///x"}, "models": [model]}, field)
    assert "'invoices'" in error.message and words in error.message
