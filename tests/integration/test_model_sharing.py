"""What the models file shares, end to end on PostgreSQL and the AWS emulator: an excluded
column is never read (the source role may not even read it), a hashed one leaves only as its
hash, the same for every tenant; a model not offered is never transferred; descriptions reach
schema.json and Glue."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from byob.errors import ConfigError
from tests.support import make_services, onboard_athena, onboard_s3, pg_exec

pytestmark = pytest.mark.integration

SSN = "SSN-987-65-4321"
SHARED_EMAIL = "shared.person@example.com"
NOTE = "plain-note-value-visible"  # delivered as is: proves the byte search can see text
CONFIG = """
[source]
url = "{url}"

[[models]]
name = "customers"
table = "customers"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = "id"
exclude = ["ssn"]
hash = ["email"]
description = "People who bought something"
column_descriptions = {{ email = "Sign-in address, hashed", note = "Free text" }}

[[models]]
name = "internal"
table = "internal"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = "id"
offered = false
"""


@pytest.fixture
def reader(pg_url: str) -> Iterator[str]:
    """The source as a role that may read every column of customers but ssn."""
    pg_exec(
        pg_url,
        "CREATE TABLE customers (id bigint PRIMARY KEY, tenant_id text NOT NULL, email text, "
        "ssn text, note text, updated_at timestamptz NOT NULL)",
        "INSERT INTO customers VALUES "
        f"(1, 'acme', '{SHARED_EMAIL}', '{SSN}', '{NOTE}', now() - interval '1 hour'), "
        f"(2, 'globex', '{SHARED_EMAIL}', '{SSN}', '{NOTE}', now() - interval '1 hour'), "
        "(3, 'acme', 'only.acme@example.com', 'SSN-111-22-3333', NULL, now() - interval '1 hour'), "
        "(4, 'acme', NULL, NULL, NULL, now() - interval '1 hour')",
        "CREATE TABLE internal (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
        "INSERT INTO internal VALUES (1, 'acme', now() - interval '1 hour')",
    )
    role = f"reader_{uuid.uuid4().hex[:10]}"
    pg_exec(
        pg_url,
        f"CREATE ROLE {role} LOGIN",
        f"GRANT SELECT (id, tenant_id, email, note, updated_at) ON customers TO {role}",
        f"GRANT SELECT ON internal TO {role}",
    )
    try:
        yield pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        pg_exec(pg_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def _app(tmp_path: Path, source: str, aws: Any) -> Any:
    config = tmp_path / "byob.toml"
    config.write_text(CONFIG.format(url=source))
    return make_services(tmp_path, config, aws)


def _objects(customer: Any, bucket: str) -> dict[str, bytes]:
    s3 = customer.client("s3")
    return {
        o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in customer.keys(bucket)
    }


def test_excluded_and_hashed_values_never_leave_and_hashes_match_across_tenants(
    tmp_path: Path, pg_url: str, reader: str, aws: Any
) -> None:
    app = _app(tmp_path, reader, aws)
    acme, acme_account = onboard_s3(app, aws, name="acme", tenant="acme", bucket="acme-data")
    globex, globex_account = onboard_s3(
        app, aws, name="globex", tenant="globex", bucket="globex-data"
    )
    # The role cannot read ssn: a SELECT naming it would fail the transfer.
    [acme_result] = app.transfers.run(acme.name)
    [globex_result] = app.transfers.run(globex.name)
    assert (acme_result.record.rows, globex_result.record.rows) == (3, 1)

    salt = (tmp_path / ".byob" / "hash.salt").read_text().strip().encode()
    expected = hmac.new(salt, SHARED_EMAIL.encode(), hashlib.sha256).hexdigest()
    # The README's way for the vendor to compute the same hash in PostgreSQL.
    pg_exec(pg_url, "CREATE EXTENSION IF NOT EXISTS pgcrypto")
    with psycopg.connect(pg_url) as db:
        in_sql = db.execute(
            "SELECT encode(hmac(%s, %s, 'sha256'), 'hex')", (SHARED_EMAIL, salt.decode())
        ).fetchone()
    assert in_sql == (expected,)
    hashes = {}
    for name, account, bucket in (
        ("acme", acme_account, "acme-data"),
        ("globex", globex_account, "globex-data"),
    ):
        objects = _objects(account, bucket)
        parquet = {k: v for k, v in objects.items() if k.endswith(".parquet")}
        assert parquet and any("/manifest_" in k for k in objects)
        assert "exports/_schemas/customers/schema.json" in objects
        assert not any("/internal/" in k for k in objects), "a model not offered was delivered"
        for key, body in objects.items():
            # Not even the excluded column's name: it is in no file's schema nor any JSON.
            for secret in (SSN, "SSN-111-22-3333", SHARED_EMAIL, "only.acme@example.com", "ssn"):
                assert secret.encode() not in body, f"{secret!r} found in {key}"
        assert any(NOTE.encode() in body for body in parquet.values())  # the search sees text
        table = pq.read_table(io.BytesIO(next(iter(parquet.values()))))
        assert "ssn" not in table.column_names
        assert table.schema.field("email").type == "string"
        rows = {r["id"]: r for r in table.to_pylist()}
        hashes[name] = rows[1 if name == "acme" else 2]["email"]
        if name == "acme":
            assert rows[4]["email"] is None  # NULL stays NULL
            assert rows[3]["email"] != hashes[name]
    assert hashes == {"acme": expected, "globex": expected}

    # The same value hashes the same in a later transfer.
    pg_exec(pg_url, "UPDATE customers SET note = 'changed', updated_at = now() WHERE id = 1")
    [again] = app.transfers.run(acme.name)
    assert again.record.rows == 1
    newest = max(
        (k for k in _objects(acme_account, "acme-data") if k.endswith(".parquet")),
        key=lambda k: k.rsplit("_", 1)[1],
    )
    body = acme_account.client("s3").get_object(Bucket="acme-data", Key=newest)["Body"].read()
    assert pq.read_table(io.BytesIO(body)).column("email").to_pylist() == [expected]


def test_schema_json_and_manifest_describe_the_delivered_columns(
    tmp_path: Path, reader: str, aws: Any
) -> None:
    app = _app(tmp_path, reader, aws)
    conn, customer = onboard_s3(app, aws, bucket="acme-data")
    [result] = app.transfers.run(conn.name)
    s3 = customer.client("s3")
    schema = json.loads(
        s3.get_object(Bucket="acme-data", Key="exports/_schemas/customers/schema.json")[
            "Body"
        ].read()
    )
    assert schema["description"] == "People who bought something"
    columns = {c["name"]: c for c in schema["columns"]}
    assert list(columns) == ["id", "tenant_id", "email", "note", "updated_at"]
    assert columns["email"]["hashed"] and columns["email"]["type"] == "string"
    assert columns["email"]["description"] == "Sign-in address, hashed"
    assert columns["note"] == {
        "name": "note",
        "source": "note",
        "type": "string",
        "glue_type": "string",
        "hashed": False,
        "description": "Free text",
    }
    assert schema["hash"]["algorithm"] == "HMAC-SHA256"
    manifest = json.loads(
        s3.get_object(Bucket="acme-data", Key=result.record.manifest_key)["Body"].read()
    )
    assert [c["name"] for c in manifest["columns"]] == list(columns)
    assert next(c for c in manifest["columns"] if c["name"] == "email")["hashed"] is True


def test_a_model_not_offered_is_refused_by_name(tmp_path: Path, reader: str, aws: Any) -> None:
    app = _app(tmp_path, reader, aws)
    conn, customer = onboard_s3(app, aws, bucket="acme-data")
    with pytest.raises(ConfigError, match="model 'internal' is not offered") as info:
        app.transfers.run(conn.name, model="internal")
    assert info.value.field == "model"
    assert [r.record.model for r in app.transfers.run(conn.name)] == ["customers"]
    assert not customer.keys("acme-data", "exports/internal/")
    assert app.transfers.model_names(conn) == ["customers"]


def test_glue_columns_carry_the_descriptions(tmp_path: Path, reader: str, aws: Any) -> None:
    app = _app(tmp_path, reader, aws)
    conn, customer, _ = onboard_athena(app, aws)
    app.transfers.run(conn.name)
    glue = customer.client("glue")
    table = glue.get_table(DatabaseName="billing", Name="customers")["Table"]
    assert table["Description"] == "People who bought something"
    columns = {c["Name"]: c for c in table["StorageDescriptor"]["Columns"]}
    assert "ssn" not in columns
    assert columns["email"] == {
        "Name": "email",
        "Type": "string",
        "Comment": "Sign-in address, hashed",
    }
    assert "Comment" not in columns["id"]
    view = glue.get_table(DatabaseName="billing", Name="customers_latest")["Table"]
    assert "ssn" not in {c["Name"] for c in view["StorageDescriptor"]["Columns"]}
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName="billing", Name="internal")
    for obj in customer.keys("lake"):
        body = customer.client("s3").get_object(Bucket="lake", Key=obj["Key"])["Body"].read()
        assert SHARED_EMAIL.encode() not in body and SSN.encode() not in body, obj["Key"]


def test_a_tombstone_key_hashes_as_its_rows_did(tmp_path: Path, pg_url: str, aws: Any) -> None:
    """A hashed key (here one whose jsonb form differs from its text form: a timestamp) is
    hashed from the same text in a tombstone as in a row, so the deletion matches the row."""
    pg_exec(
        pg_url,
        "CREATE TABLE events (id bigint, created_on timestamp, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL, PRIMARY KEY (id, created_on))",
        "INSERT INTO events VALUES (1, '2026-01-02 03:04:05', 'acme', now() - interval '1 hour'),"
        " (2, '2026-01-02 03:04:06', 'acme', now() - interval '1 hour')",
    )
    config = tmp_path / "byob.toml"
    config.write_text(
        f'[source]\nurl = "{pg_url}"\n[[models]]\nname = "events"\ntable = "events"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\n'
        'primary_key = ["id", "created_on"]\nhash = ["id", "created_on"]\ncapture_deletes = true\n'
    )
    app = make_services(tmp_path, config, aws)
    conn, customer = onboard_s3(app, aws, bucket="acme-data")
    app.deletes.install_capture("events")
    app.transfers.run(conn.name)
    pg_exec(pg_url, "DELETE FROM events WHERE id = 1")
    [increment] = app.transfers.run(conn.name)
    assert increment.record.rows == 1
    rows = []
    for key, body in _objects(customer, "acme-data").items():
        if key.endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    deleted = [(r["id"], r["created_on"]) for r in rows if r["_byob_deleted"]]
    live = [(r["id"], r["created_on"]) for r in rows if not r["_byob_deleted"]]
    assert len(deleted) == 1 and len(live) == 2
    assert deleted[0] in live  # the tombstone's hashed key is row 1's
    assert all(len(v) == 64 for key in live for v in key)


def test_models_check_names_a_column_the_source_lacks(
    tmp_path: Path, reader: str, aws: Any
) -> None:
    config = tmp_path / "byob.toml"
    config.write_text(CONFIG.format(url=reader).replace('hash = ["email"]', 'hash = ["e_mail"]'))
    app = make_services(tmp_path, config, aws)
    with pytest.raises(ConfigError, match="hash names 'e_mail', which table 'customers'") as info:
        app.models.check()
    assert info.value.field == "hash"
