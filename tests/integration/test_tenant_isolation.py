"""Tenants whose names are hostile to SQL built by hand: quotes, LIKE wildcards, an injection
attempt, unicode, spaces inside a tenant value, and a tenant column of type integer. Each connection gets
exactly its tenant's rows, and the tenant only ever travels as a bound parameter."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from byob.demo.readback import connect_s3
from byob.domain.models import ModelSpec, resolve
from byob.domain.windows import Window
from byob.errors import ByobError, InvalidFieldError
from byob.sources.postgres import AdbcPostgresSource
from tests.support import create, make_services, onboard_s3, pg_exec, write_config

pytestmark = pytest.mark.integration

INVOICES = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}
ACCOUNTS = {
    "name": "accounts",
    "table": "accounts",
    "tenant_column": "org_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}

# Tenants that get a connection.
HOSTILE = [
    "o'brien",
    "100%",
    "a_b",
    "aXb",
    "x'; DROP TABLE invoices; --",
    "東京-ü",
    "in ner",
    "acme",
]
# Tenants that only have rows: each is what a careless filter would mix up with one above.
DECOYS = [
    "O'Brien",
    "o''brien",
    "o",
    "100",
    "1000",
    "100%%",
    "a%b",
    "aYb",
    "a_bc",
    "x",
    "東京-u\u0308",
    "東京",
    "inner",
    "in  ner",
    " in ner",
    "ACME",
    "acme%",
    "",
]
assert unicodedata.normalize("NFC", "東京-u\u0308") == "東京-ü"  # the same text, decomposed

ORG_IDS = [42, 4, 420, -42, 0, 2147483647]


@pytest.fixture
def source(pg_url: str) -> str:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE accounts (id bigint PRIMARY KEY, org_id integer NOT NULL, "
        "name text, updated_at timestamptz NOT NULL DEFAULT now())",
    )
    with psycopg.connect(pg_url) as db, db.cursor() as cur:
        next_id = 1
        for index, tenant in enumerate(HOSTILE + DECOYS):
            count = index + 2  # every tenant has a different number of rows
            cur.executemany(
                "INSERT INTO invoices (id, tenant_id, amount) VALUES (%s, %s, %s)",
                [(next_id + i, tenant, f"{index}.{i:02d}") for i in range(count)],
            )
            next_id += count
        for index, org in enumerate(ORG_IDS):
            cur.executemany(
                "INSERT INTO accounts (id, org_id, name) VALUES (%s, %s, %s)",
                [(index * 100 + i, org, f"org {org} #{i}") for i in range(index + 3)],
            )
        db.commit()
    return pg_url


def source_ids(url: str, table: str, column: str, value: Any) -> set[int]:
    with psycopg.connect(url) as db:
        rows = db.execute(f"SELECT id FROM {table} WHERE {column} = %s", (value,)).fetchall()
    return {r[0] for r in rows}


def table_count(url: str, table: str) -> int:
    with psycopg.connect(url) as db:
        assert db.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def delivered(
    aws: Any, customer: Any, bucket: str, model: str, columns: str
) -> list[tuple[Any, ...]]:
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    return con.execute(
        f"SELECT {columns} FROM read_parquet('s3://{bucket}/exports/{model}/*/*.parquet')"
    ).fetchall()


def manifest_of(customer: Any, bucket: str, model: str) -> dict[str, Any]:
    [entry] = customer.keys(bucket, f"exports/_manifests/{model}/")
    body = customer.client("s3").get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
    return json.loads(body)


def test_each_hostile_tenant_receives_exactly_its_own_rows(
    tmp_path: Path, source: str, aws: Any
) -> None:
    app = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", source, [INVOICES, ACCOUNTS]), aws
    )
    before = table_count(source, "invoices")
    seen: dict[int, str] = {}
    for index, tenant in enumerate(HOSTILE):
        bucket = f"tenant-{index}"
        conn, customer = onboard_s3(app, aws, name=f"c{index}", tenant=tenant, bucket=bucket)
        assert app.connections.get(conn.name).tenant == tenant  # stored exactly, not stripped
        [result] = app.transfers.run(conn.name, model="invoices")
        rows = delivered(aws, customer, bucket, "invoices", "id, tenant_id")
        expected = source_ids(source, "invoices", "tenant_id", tenant)
        assert len(expected) == index + 2
        assert {r[1] for r in rows} == {tenant}, (
            f"tenant {tenant!r} received {set(r[1] for r in rows)}"
        )
        assert sorted(r[0] for r in rows) == sorted(expected), tenant
        assert result.record.rows == len(expected)
        assert manifest_of(customer, bucket, "invoices")["tenant"] == tenant
        for row_id, _ in rows:
            assert row_id not in seen, f"row {row_id} went to {seen[row_id]!r} and {tenant!r}"
            seen[row_id] = tenant
    assert table_count(source, "invoices") == before  # still there, nothing dropped or changed


def test_integer_tenant_column_delivers_only_that_org(
    tmp_path: Path, source: str, aws: Any
) -> None:
    app = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", source, [INVOICES, ACCOUNTS]), aws
    )
    conn, customer = onboard_s3(app, aws, tenant="42", bucket="org-42")
    [result] = app.transfers.run(conn.name, model="accounts")
    rows = delivered(aws, customer, "org-42", "accounts", "id, org_id")
    assert {r[1] for r in rows} == {42}  # not 4, 420 or -42
    assert sorted(r[0] for r in rows) == sorted(source_ids(source, "accounts", "org_id", 42))
    assert result.record.rows == 3


def test_integer_tenant_column_refuses_an_injection_instead_of_widening_the_filter(
    tmp_path: Path, source: str, aws: Any
) -> None:
    app = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", source, [INVOICES, ACCOUNTS]), aws
    )
    before = table_count(source, "accounts")
    conn, customer = onboard_s3(app, aws, tenant="42 OR 1=1", bucket="org-evil")
    with pytest.raises(ByobError) as caught:
        app.transfers.run(conn.name, model="accounts")
    assert "integer" in caught.value.message  # PostgreSQL refused the value as an integer
    assert customer.keys("org-evil", "exports/accounts/") == []
    assert app.adapters.state.transfers.history(conn.id)[0].status == "failed"
    assert table_count(source, "accounts") == before


@pytest.mark.parametrize("tenant", [" ", "", "\t \n"])
def test_blank_tenants_are_refused(tmp_path: Path, source: str, aws: Any, tenant: str) -> None:
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", source, [INVOICES]), aws)
    with pytest.raises(InvalidFieldError) as caught:
        create(
            app,
            name="blank",
            tenant=tenant,
            type="s3",
            account_id="210987654321",
            bucket="bkt",
            region="us-east-1",
        )
    assert caught.value.field == "tenant"
    assert app.connections.all() == []


@pytest.mark.parametrize("tenant", [*HOSTILE, "42"])
def test_select_binds_the_tenant_and_the_window_as_parameters(source: str, tenant: str) -> None:
    declared = ACCOUNTS if tenant == "42" else INVOICES
    spec = ModelSpec(**{**declared, "primary_key": tuple(declared["primary_key"])})
    low = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    window = Window(low=low, high=low + timedelta(days=1))
    with AdbcPostgresSource(source) as src:
        model = resolve(spec, src.columns(spec.table))
        sql, params = src.select_sql(model, tenant, window)
        assert params[0] == tenant and len(params) == 3  # tenant, high and low bound apart
        assert tenant not in sql and "2024" not in sql  # no value is spliced into the text
        assert "LIKE" not in sql.upper() and "SIMILAR" not in sql.upper()
        # The statement runs with those parameters and finds what PostgreSQL's `=` finds.
        everything = Window(low=datetime(2000, 1, 1, tzinfo=UTC), high=datetime.now(UTC))
        got = {
            i
            for batch in src.read(model, tenant, everything)
            for i in batch.column("id").to_pylist()
        }
    value: Any = int(tenant) if tenant == "42" else tenant
    assert got == source_ids(source, spec.table, spec.tenant_column, value)
