"""The demo dataset: deterministic, typed as declared, and loadable into SQLite."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from byob.demo import dataset as ds

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")
DAY = re.compile(r"^\d{4}-\d\d-\d\d$")


@pytest.fixture(scope="module")
def full() -> dict[str, pa.Table]:
    return ds.generate(NOW)


@pytest.fixture(scope="module")
def small() -> dict[str, pa.Table]:
    return ds.generate(NOW, scale=0.05)


def _query(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def test_generate_is_deterministic(full: dict[str, pa.Table], small: dict[str, pa.Table]) -> None:
    again = ds.generate(NOW)
    assert all(full[t].equals(again[t]) for t in ds.TABLES)
    assert not small["accounts"].equals(ds.generate(NOW, scale=0.05, seed=8)["accounts"])


def test_default_scale_has_100k_rows_over_unequal_tenants(full: dict[str, pa.Table]) -> None:
    assert tuple(full) == ds.TABLES
    assert sum(t.num_rows for t in full.values()) >= 100_000
    assert len(ds.TENANTS) >= 3
    for table in full.values():
        sizes = pc.value_counts(table["tenant_id"]).to_pylist()
        per_tenant = {s["values"]: s["counts"] for s in sizes}
        assert set(per_tenant) == set(ds.TENANTS)
        assert len(set(per_tenant.values())) == len(ds.TENANTS)  # unequal sizes


def test_scale_multiplies_row_counts(full: dict[str, pa.Table], small: dict[str, pa.Table]) -> None:
    for table in ("accounts", "invoices", "usage"):
        assert small[table].num_rows == pytest.approx(full[table].num_rows * 0.05, rel=0.02)
    with pytest.raises(ValueError):
        ds.generate(NOW, scale=0)


def test_ids_are_unique_and_dense(full: dict[str, pa.Table]) -> None:
    for name, table in full.items():
        assert {"id", "tenant_id", "updated_at"} <= set(table.column_names), name
        assert table["id"].to_pylist() == list(range(1, table.num_rows + 1)), name


def test_arrow_types_are_as_declared(full: dict[str, pa.Table]) -> None:
    ts = pa.timestamp("us", tz="UTC")
    for name, table in full.items():
        assert table.schema == ds.SCHEMAS[name]
        assert table.schema.field("id").type == pa.int64()
        assert table.schema.field("tenant_id").type == pa.string()
        assert table.schema.field("updated_at").type == ts
        assert table.schema.field("created_at").type == ts
    assert full["invoices"].schema.field("amount").type == pa.decimal128(18, 2)
    assert full["invoices"].schema.field("invoice_date").type == pa.date32()
    assert full["invoice_items"].schema.field("unit_price").type == pa.decimal128(18, 4)
    assert full["invoice_items"].schema.field("quantity").type == pa.int32()
    assert full["usage"].schema.field("quantity").type == pa.float64()
    assert full["accounts"].schema.field("is_enterprise").type == pa.bool_()
    assert full["accounts"].schema.field("notes").nullable


def test_values_are_realistic(full: dict[str, pa.Table]) -> None:
    accounts = full["accounts"]
    refs = accounts["external_ref"].to_pylist()
    assert all(uuid.UUID(r).version == 4 for r in refs) and len(set(refs)) == len(refs)
    assert isinstance(json.loads(accounts["metadata"][0].as_py()), dict)
    assert 0 < accounts["notes"].null_count < accounts.num_rows
    payments = full["payments"]
    failed = pc.equal(payments["status"], "failed")
    assert pc.all(pc.equal(pc.is_null(payments["failure_reason"]), pc.invert(failed))).as_py()
    assert isinstance(json.loads(full["usage"]["attributes"][0].as_py()), dict)


def test_invoices_add_up_and_stay_in_tenant(small: dict[str, pa.Table]) -> None:
    invoices = {r["id"]: r for r in small["invoices"].to_pylist()}
    totals: dict[int, Decimal] = {}
    for item in small["invoice_items"].to_pylist():
        invoice = invoices[item["invoice_id"]]
        assert item["tenant_id"] == invoice["tenant_id"]
        totals[item["invoice_id"]] = totals.get(item["invoice_id"], Decimal(0)) + item["amount"]
    assert totals == {i: inv["amount"] for i, inv in invoices.items()}
    subs = {r["id"]: r for r in small["subscriptions"].to_pylist()}
    for invoice in invoices.values():
        sub = subs[invoice["subscription_id"]]
        assert (sub["tenant_id"], sub["account_id"]) == (
            invoice["tenant_id"],
            invoice["account_id"],
        )
        assert invoice["due_date"] > invoice["invoice_date"]


def test_timestamps_lie_in_the_past_window(full: dict[str, pa.Table]) -> None:
    lo, hi = NOW - timedelta(days=90, hours=1), NOW - timedelta(hours=1)
    for name, table in full.items():
        created, updated = table["created_at"], table["updated_at"]
        assert pc.min(created).as_py() >= lo and pc.max(updated).as_py() <= hi, name
        assert pc.all(pc.less_equal(created, updated)).as_py(), name


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        ds.generate(datetime(2025, 6, 1), scale=0.01)


def test_ddl_uses_the_declared_type_spellings() -> None:
    sqlite, postgres = ds.table_ddl("sqlite"), ds.table_ddl("postgresql")
    assert tuple(sqlite) == tuple(postgres) == ds.TABLES
    assert "amount NUMERIC(18,2) NOT NULL" in sqlite["invoices"]
    assert "unit_price NUMERIC(18,4) NOT NULL" in sqlite["invoice_items"]
    assert "updated_at TIMESTAMPTZ NOT NULL" in sqlite["payments"]
    assert "external_ref UUID NOT NULL" in sqlite["accounts"]
    assert "quantity DOUBLE PRECISION NOT NULL" in sqlite["usage"]
    assert "attributes jsonb NOT NULL" in postgres["usage"]
    assert "id bigint PRIMARY KEY" in postgres["accounts"]
    assert "notes text," in postgres["accounts"]  # nullable
    assert all("(tenant_id, updated_at)" in s for s in ds.index_ddl().values())


def test_load_sqlite_round_trips(small: dict[str, pa.Table], tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite"
    counts = ds.load_sqlite(path, small)
    assert counts == {t: small[t].num_rows for t in ds.TABLES}
    assert ds.load_sqlite(path, small) == counts  # reloading replaces, not appends

    expected = small["invoices"].slice(0, 1).to_pylist()[0]
    (row,) = _query(path, "SELECT * FROM invoices WHERE id = ?", 1)
    got = dict(zip(small["invoices"].column_names, row, strict=True))
    assert got["created_at"] == expected["created_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
    assert TS.match(got["updated_at"]) and DAY.match(got["invoice_date"])
    assert date.fromisoformat(got["due_date"]) == expected["due_date"]
    # NUMERIC affinity stores the bound decimal strings as REAL/INTEGER, exactly at this scale.
    assert Decimal(str(got["amount"])).quantize(Decimal("0.01")) == expected["amount"]
    (kinds,) = _query(
        path, "SELECT typeof(amount), typeof(created_at), typeof(number) FROM invoices LIMIT 1"
    )
    assert kinds[0] in {"real", "integer"} and kinds[1:] == ("text", "text")

    (acct,) = _query(
        path, "SELECT external_ref, metadata, is_enterprise, notes FROM accounts WHERE id = ?", 1
    )
    first = small["accounts"].slice(0, 1).to_pylist()[0]
    assert acct == (
        first["external_ref"],
        first["metadata"],
        int(first["is_enterprise"]),
        first["notes"],
    )
    nulls = _query(path, "SELECT count(*) FROM payments WHERE failure_reason IS NULL")
    assert nulls == [(small["payments"]["failure_reason"].null_count,)]
    indexes = {r[0] for r in _query(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {f"{t}_tenant_updated_idx" for t in ds.TABLES} <= indexes


def test_mutation_adds_and_updates_rows_with_fresh_updated_at(
    small: dict[str, pa.Table], tmp_path: Path
) -> None:
    path = tmp_path / "demo.sqlite"
    counts = ds.load_sqlite(path, small)
    mutation = ds.mutate(NOW, counts)
    again = ds.mutate(NOW, counts)
    assert all(mutation.inserts[t].equals(again.inserts[t]) for t in ds.TABLES)
    assert all(mutation.updates[t].equals(again.updates[t]) for t in mutation.updates)
    cutoff = (NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    stamp = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")

    changed = ds.apply_mutation_sqlite(path, mutation)
    assert changed == mutation.changed()
    assert all(n > 0 for n in changed.values())
    for name in ds.TABLES:
        (fresh,) = _query(path, f"SELECT count(*) FROM {name} WHERE updated_at > ?", cutoff)
        assert fresh == (changed[name],), name
        new = mutation.inserts[name]
        assert new["id"].to_pylist() == list(
            range(counts[name] + 1, counts[name] + new.num_rows + 1)
        )
        assert set(new["tenant_id"].to_pylist()) == set(ds.TENANTS)
        (newest,) = _query(path, f"SELECT max(updated_at) FROM {name}")
        assert newest[0] <= stamp

    updates = mutation.updates["invoices"]
    ids = updates["id"].to_pylist()
    rows = _query(
        path,
        f"SELECT status, updated_at FROM invoices WHERE id IN ({', '.join('?' * len(ids))})",
        *ids,
    )
    assert rows == [("paid", stamp)] * len(ids)
    (sub,) = _query(
        path,
        "SELECT status, ends_on, auto_renew FROM subscriptions WHERE id = ?",
        mutation.updates["subscriptions"]["id"][0].as_py(),
    )
    assert sub == ("canceled", (NOW - timedelta(minutes=5)).date().isoformat(), 0)
