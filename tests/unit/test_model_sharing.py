"""What the models file says may be shared: offered models, excluded and hashed columns,
descriptions; the hashing itself, schema.json and the Glue columns they make."""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from byob import models_file
from byob.domain import athena, layout
from byob.domain import types as t
from byob.domain.manifests import delivered_columns, schema_document
from byob.domain.models import ModelSpec, resolve
from byob.engine.hashing import ColumnHasher, hash_columns
from byob.errors import ConfigError
from byob.settings import load_settings
from byob.store.secrets import load_or_create_salt

SOURCE = [
    ("id", t.INT64, False),
    ("tenant_id", t.STRING, False),
    ("email", t.STRING, True),
    ("ssn", t.STRING, True),
    ("note", t.STRING, True),
    ("deleted_at", t.TIMESTAMPTZ, True),
    ("updated_at", t.TIMESTAMPTZ, False),
]
MODEL = """
[source]
url = "postgresql://u@h/db"

[[models]]
name = "customers"
table = "customers"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = "id"
"""


def parse(extra: str) -> models_file.ModelsFile:
    raw = tomllib.loads(MODEL + extra)
    return models_file.parse_models_file(raw, origin="byob.toml", base_dir=Path("/cfg"))


def refused(extra: str, field: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(extra)
    assert info.value.field == field, info.value.message
    assert info.value.message.startswith("byob.toml: models[0] ('customers')")
    return info.value.message


def spec(**overrides: Any) -> ModelSpec:
    args: dict[str, Any] = {
        "name": "customers",
        "table": "customers",
        "tenant_column": "tenant_id",
        "cursor_column": "updated_at",
        "primary_key": ("id",),
    }
    return ModelSpec(**(args | overrides))


# --- the models file -------------------------------------------------------------------------


def test_the_sharing_keys_are_read() -> None:
    cfg = parse(
        'offered = false\nexclude = ["ssn"]\nhash = ["email"]\n'
        'description = "People who buy"\n'
        'column_descriptions = { email = "Sign-in address", note = "Free text" }\n'
    )
    [model] = cfg.models
    assert not model.offered
    assert model.exclude == ("ssn",)
    assert model.hashed == ("email",)
    assert model.description == "People who buy"
    assert model.column_descriptions == (("email", "Sign-in address"), ("note", "Free text"))


def test_defaults_share_everything() -> None:
    [model] = parse("").models
    assert model.offered and model.exclude == () and model.hashed == ()
    assert model.description == "" and model.column_descriptions == ()


def test_offered_models_and_a_refused_one() -> None:
    cfg = parse(
        "offered = false\n"
        '[[models]]\nname = "orders"\ntable = "orders"\ntenant_column = "tenant_id"\n'
        'cursor_column = "updated_at"\nprimary_key = "id"\n'
    )
    assert [m.name for m in cfg.offered_models] == ["orders"]
    assert cfg.offered_model("orders").name == "orders"
    with pytest.raises(ConfigError, match=r"model 'customers' is not offered \(offered = false"):
        cfg.offered_model("customers")
    assert cfg.model("customers").name == "customers"  # still declared: checks may see it


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ('offered = "yes"\n', "offered", "offered must be true or false"),
        ('exclude = "ssn"\n', "exclude", "exclude must be a list of column names"),
        ('hash = ["email", "email"]\n', "hash", "hash must be a list of column names"),
        ("hash = [1]\n", "hash", "hash must be a list"),
        ("description = 3\n", "description", "description must be text"),
        ('column_descriptions = ["email"]\n', "column_descriptions", "must map column names"),
        ("column_descriptions = { email = 1 }\n", "column_descriptions", "must map column names"),
        ('exclude = ["ssn"]\nhash = ["ssn"]\n', "hash", "cannot be both excluded and hashed"),
        ('exclude = ["id"]\n', "exclude", "exclude names 'id', its primary_key"),
        ('exclude = ["tenant_id"]\n', "exclude", "its tenant_column"),
        ('exclude = ["updated_at"]\n', "exclude", "its cursor_column"),
        ('hash = ["tenant_id"]\n', "hash", "hash names 'tenant_id', its tenant_column"),
        ('hash = ["updated_at"]\n', "hash", "its cursor_column"),
        ('deleted_column = "deleted_at"\nhash = ["deleted_at"]\n', "hash", "its deleted_column"),
        (
            'deleted_column = "deleted_at"\nexclude = ["deleted_at"]\n',
            "exclude",
            "its deleted_column",
        ),
        (
            'columns = ["email", "ssn"]\nexclude = ["ssn"]\n',
            "exclude",
            "'ssn' is both in columns and in exclude",
        ),
        (
            'exclude = ["ssn"]\ncolumn_descriptions = { ssn = "x" }\n',
            "column_descriptions",
            "describes 'ssn', which is excluded",
        ),
        (f'description = "{"x" * 2049}"\n', "description", "longer than 2048"),
        (
            f'column_descriptions = {{ email = "{"x" * 256}" }}\n',
            "column_descriptions",
            "longer than 255",
        ),
    ],
)
def test_sharing_errors_name_the_field(extra: str, field: str, says: str) -> None:
    assert says in refused(extra, field)


def test_a_key_column_that_is_also_the_tenant_column_cannot_be_hashed() -> None:
    with pytest.raises(ConfigError, match="its tenant_column") as info:
        spec(primary_key=("tenant_id", "id"), hashed=("tenant_id",))
    assert info.value.field == "hash"


# --- against the source ----------------------------------------------------------------------


def test_excluded_columns_are_not_read_and_hashed_ones_are_strings() -> None:
    model = resolve(
        spec(
            exclude=("ssn",),
            hashed=("email", "id"),
            column_descriptions=(("email", "Sign-in address"),),
        ),
        SOURCE,
    )
    assert [c.source_name for c in model.columns] == [
        "id",
        "tenant_id",
        "email",
        "note",
        "deleted_at",
        "updated_at",
    ]
    assert [c.source_name for c in model.hashed_columns] == ["id", "email"]
    assert model.column("id").type == t.STRING  # a hashed key is delivered as its hash
    assert model.column("email").description == "Sign-in address"
    assert model.column("note").description == ""


@pytest.mark.parametrize("key", ["exclude", "hashed", "column_descriptions"])
def test_unknown_names_are_reported_when_resolving(key: str) -> None:
    value: Any = (("nope", "x"),) if key == "column_descriptions" else ("nope",)
    field = "hash" if key == "hashed" else key
    with pytest.raises(ConfigError) as info:
        resolve(spec(**{key: value}), SOURCE)
    assert info.value.field == field
    assert f"{field} names 'nope', which table 'customers' does not have" in info.value.message


def test_a_hashed_column_must_be_delivered() -> None:
    with pytest.raises(ConfigError, match="hash names 'ssn', which the model does not deliver"):
        resolve(spec(columns=("email",), hashed=("ssn",)), SOURCE)


# --- hashing ---------------------------------------------------------------------------------


def test_hashes_are_hmac_sha256_hex_of_the_text_and_nulls_stay_null() -> None:
    hasher = ColumnHasher(b"a salt of sixteen+")
    out = hasher.hash_array(pa.array(["a@x.io", None, "a@x.io", ""]))
    expected = hmac.new(b"a salt of sixteen+", b"a@x.io", hashlib.sha256).hexdigest()
    assert out.to_pylist() == [
        expected,
        None,
        expected,
        hmac.new(b"a salt of sixteen+", b"", hashlib.sha256).hexdigest(),
    ]
    other = ColumnHasher(b"another salt, same value").hash_array(pa.array(["a@x.io"]))
    assert other.to_pylist() != [expected]


def test_hash_columns_hashes_only_the_hashed_ones_and_needs_a_salt() -> None:
    model = resolve(spec(columns=("email", "note"), hashed=("email",)), SOURCE)
    batch = pa.RecordBatch.from_pydict(
        {c.name: pa.array(["v"], pa.string()) for c in model.columns if c.name != "updated_at"}
        | {"updated_at": pa.array([0], pa.timestamp("ms", tz="UTC"))}
    )
    out = hash_columns(batch, model, ColumnHasher(b"s" * 16))
    assert out.column("note").to_pylist() == ["v"]
    assert out.column("email").to_pylist() == [ColumnHasher(b"s" * 16).digest("v")]
    with pytest.raises(ConfigError, match="set BYOB_HASH_SALT") as info:
        hash_columns(batch, model, None)
    assert info.value.field == "BYOB_HASH_SALT"


def test_the_salt_is_generated_once_in_home_and_required_in_production(tmp_path: Path) -> None:
    first = load_or_create_salt("", tmp_path, production=False)
    assert len(first) >= 32
    assert load_or_create_salt("", tmp_path, production=False) == first
    assert os.stat(tmp_path / "hash.salt").st_mode & 0o777 == 0o600
    assert load_or_create_salt("configured-salt-1234", tmp_path, production=True) == (
        b"configured-salt-1234"
    )
    with pytest.raises(ConfigError, match="BYOB_HASH_SALT is required") as info:
        load_or_create_salt("", tmp_path, production=True)
    assert info.value.field == "BYOB_HASH_SALT"


def test_a_short_salt_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="at least 16 characters") as info:
        load_settings(hash_salt="short")
    assert info.value.field == "BYOB_HASH_SALT"


# --- what the recipient is told --------------------------------------------------------------


def test_schema_json_lists_types_descriptions_and_hashing() -> None:
    model = resolve(
        spec(
            exclude=("ssn",),
            hashed=("email",),
            description="People who buy",
            column_descriptions=(("email", "Sign-in address"),),
            deleted_column="deleted_at",
        ),
        SOURCE,
    )
    doc = schema_document(model)
    assert doc["model"] == "customers" and doc["description"] == "People who buy"
    assert doc["primary_key"] == ["id"] and doc["cursor"] == "updated_at"
    columns = {c["name"]: c for c in doc["columns"]}
    assert "ssn" not in columns
    assert columns["email"] == {
        "name": "email",
        "source": "email",
        "type": "string",
        "glue_type": "string",
        "hashed": True,
        "description": "Sign-in address",
    }
    assert columns["id"]["hashed"] is False and columns["id"]["description"] is None
    assert columns["_byob_deleted"]["description"]
    assert doc["hash"] == {"algorithm": "HMAC-SHA256", "encoding": "hex"}
    assert schema_document(resolve(spec(), SOURCE))["hash"] is None
    # The manifest's columns (and the state store's) say the same, without empty fields.
    assert {"name": "note", "source": "note", "type": "string", "glue_type": "string"} in (
        delivered_columns(model)
    )
    assert layout.schema_key("exports", "customers") == "exports/_schemas/customers/schema.json"


def test_glue_comments_follow_the_descriptions() -> None:
    current = athena.glue_columns(
        [("id", t.INT64), ("email", t.STRING)], {"email": "Sign-in address"}
    )
    assert current == [
        {"Name": "id", "Type": "bigint"},
        {"Name": "email", "Type": "string", "Comment": "Sign-in address"},
    ]
    existing = [
        {"Name": "id", "Type": "bigint", "Comment": "old"},
        {"Name": "gone", "Type": "string", "Comment": "kept with the column"},
    ]
    assert athena.merge_columns(existing, current) == [
        {"Name": "id", "Type": "bigint"},
        {"Name": "gone", "Type": "string", "Comment": "kept with the column"},
        {"Name": "email", "Type": "string", "Comment": "Sign-in address"},
    ]
    table = athena.table_input(
        model="m", bucket="b", prefix="p", columns=current, earliest=date(2026, 1, 1)
    )
    assert "Description" not in table
    described = athena.table_input(
        model="m",
        bucket="b",
        prefix="p",
        columns=current,
        earliest=date(2026, 1, 1),
        description="d",
    )
    assert described["Description"] == "d"
