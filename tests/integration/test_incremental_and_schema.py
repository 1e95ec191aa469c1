"""Incremental windows, manifests, full refresh, the settle lag and schema evolution, checked
against the objects in the bucket (downloaded and hashed) and read back by DuckDB."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byob.demo.readback import connect_s3
from byob.errors import SchemaChangeError
from tests.support import make_services, onboard_s3, pg_exec, wait_for, write_config

pytestmark = pytest.mark.integration

BUCKET = "bkt"
MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


# -- helpers -----------------------------------------------------------------------------------


# The settle lag of the tests that exercise it: longer than a transfer takes on a busy machine,
# or a transfer meant to run inside the lag would start after it.
LAG = timedelta(seconds=4)
LONG_LAG = timedelta(seconds=120)


def source_now(url: str) -> datetime:
    """The source's clock, which the settle lag is measured on."""
    with psycopg.connect(url) as db:
        value = db.execute("SELECT clock_timestamp()").fetchone()
    assert value is not None
    return value[0]  # type: ignore[no-any-return]


def source_row_time(url: str, row_id: int) -> datetime:
    with psycopg.connect(url) as db:
        value = db.execute("SELECT updated_at FROM invoices WHERE id = %s", (row_id,)).fetchone()
    assert value is not None
    return value[0]  # type: ignore[no-any-return]


def setup(tmp_path: Path, url: str, aws: Any, **settings: Any) -> tuple[Any, Any, Any]:
    app = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", url, [MODEL]), aws, **settings
    )
    conn, customer = onboard_s3(app, aws, bucket=BUCKET)
    return app, conn, customer


def source_rows(url: str, tenant: str = "acme") -> dict[int, dict[str, Any]]:
    with psycopg.connect(url) as db, db.cursor() as cur:
        cur.execute("SELECT * FROM invoices WHERE tenant_id = %s", (tenant,))
        names = [d.name for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def get_bytes(customer: Any, key: str) -> bytes:
    return customer.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()


def manifest(customer: Any, record: Any) -> dict[str, Any]:
    return json.loads(get_bytes(customer, record.manifest_key))


def rows_of_transfer(customer: Any, record: Any) -> list[dict[str, Any]]:
    """The rows in the files the transfer's manifest lists, read with pyarrow."""
    tables = [
        pq.read_table(io.BytesIO(get_bytes(customer, f["key"])))
        for f in manifest(customer, record)["files"]
    ]
    return pa.concat_tables(tables, promote_options="default").to_pylist() if tables else []


def duckdb_rows(aws: Any, customer: Any, *, union_by_name: bool = False) -> list[dict[str, Any]]:
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    cur = con.execute(
        f"SELECT * FROM read_parquet('s3://{BUCKET}/exports/invoices/*/*.parquet', "
        f"hive_partitioning = true, union_by_name = {str(union_by_name).lower()})"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def data_keys(customer: Any) -> set[str]:
    return {o["Key"] for o in customer.keys(BUCKET, "exports/invoices/")}


@pytest.fixture
def invoices(pg_url: str) -> str:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), qty integer, dt date, "
        "updated_at timestamptz NOT NULL DEFAULT now() - interval '1 hour')",
        "INSERT INTO invoices (id, tenant_id, amount, qty, dt) "
        "SELECT i, CASE WHEN i % 3 = 0 THEN 'globex' ELSE 'acme' END, i + 0.25, i, "
        "DATE '2001-02-03' + i FROM generate_series(1, 15) i",
    )
    return pg_url


ACME_IDS = {i for i in range(1, 16) if i % 3}


# -- (a) incremental windows and manifests -----------------------------------------------------


def test_incremental_delivers_only_new_row_versions_with_exact_manifests(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, customer = setup(tmp_path, invoices, aws)
    [first] = app.transfers.run(conn.name)
    assert first.record.type.value == "full_refresh" and first.record.rows == len(ACME_IDS)
    assert {r["id"] for r in rows_of_transfer(customer, first.record)} == ACME_IDS

    pg_exec(
        invoices,
        "UPDATE invoices SET amount = amount + 100, updated_at = now() WHERE id IN (1, 2, 3)",
        "INSERT INTO invoices (id, tenant_id, amount, updated_at) VALUES "
        "(100, 'acme', 7.77, now()), (101, 'globex', 8.88, now())",
    )
    [second] = app.transfers.run(conn.name)
    assert second.record.type.value == "incremental"
    now = source_rows(invoices)
    delivered = rows_of_transfer(customer, second.record)
    assert sorted(r["id"] for r in delivered) == [1, 2, 100]  # 3 and 101 are globex's
    for row in delivered:
        assert row["amount"] == now[row["id"]]["amount"], row
        assert row["tenant_id"] == "acme"
    assert {r["id"]: r["amount"] for r in delivered}[1] == Decimal("101.25")

    # The windows chain: (None, h1] then (h1, h2]; the state's mark is the last window's top.
    assert first.record.window.low is None
    assert second.record.window.low == first.record.window.high < second.record.window.high
    state = app.adapters.state.transfers.model_state(conn.id, "invoices")
    assert state.high_water_mark == second.record.window.high
    assert state.last_transfer_id == second.record.id

    listed: set[str] = set()
    for result in (first, second):
        record = result.record
        body = manifest(customer, record)
        stamp = record.started_at.astimezone(UTC)
        assert record.manifest_key == (
            f"exports/_manifests/invoices/dt={stamp:%Y-%m-%d}/manifest_{record.id}.json"
        )
        assert body["transfer_id"] == record.id and body["tenant"] == "acme"
        assert body["transfer_type"] == record.type.value
        assert body["window"] == {
            "cursor_after": record.window.low.isoformat() if record.window.low else None,
            "cursor_up_to": record.window.high.isoformat(),
        }
        assert body["rows"] == record.rows == sum(f["rows"] for f in body["files"])
        assert body["bytes"] == record.bytes == sum(f["bytes"] for f in body["files"])
        assert len(body["files"]) == record.files >= 1
        for f in body["files"]:
            data = get_bytes(customer, f["key"])
            assert hashlib.sha256(data).hexdigest() == f["sha256"], f["key"]
            assert len(data) == f["bytes"], f["key"]
            assert pq.ParquetFile(io.BytesIO(data)).metadata.num_rows == f["rows"], f["key"]
            assert f["key"] == f"exports/invoices/dt={stamp:%Y-%m-%d}/{f['key'].rsplit('/', 1)[1]}"
            assert f["key"].endswith(f"_{stamp:%Y%m%d%H%M%S}.parquet")
            listed.add(f["key"])
    assert listed == data_keys(customer)  # every data object is in a manifest, and vice versa

    rows = duckdb_rows(aws, customer)
    assert len(rows) == len(ACME_IDS) + 3
    latest = {r["id"]: r for r in sorted(rows, key=lambda r: r["updated_at"])}
    assert {i: r["amount"] for i, r in latest.items()} == {i: r["amount"] for i, r in now.items()}


def test_two_transfers_in_the_same_second_keep_both_files(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    """File names carry the start time to the second only: a second transfer of the model
    starting in the same second must not overwrite the first one's files. byob's clock runs
    ten times slower here, so both transfers are asked to start within one clock second."""
    app, conn, customer = setup(tmp_path, invoices, aws)
    real_start = datetime.now(UTC)
    app.adapters.clock = lambda: real_start + (datetime.now(UTC) - real_start) / 10
    [first] = app.transfers.run(conn.name)
    pg_exec(
        invoices, "INSERT INTO invoices (id, tenant_id, updated_at) VALUES (100, 'acme', now())"
    )
    [second] = app.transfers.run(conn.name)
    assert first.record.rows == len(ACME_IDS) and second.record.rows == 1
    assert first.record.started_at.replace(microsecond=0) < second.record.started_at
    for record in (first.record, second.record):
        for f in manifest(customer, record)["files"]:
            assert hashlib.sha256(get_bytes(customer, f["key"])).hexdigest() == f["sha256"]
    assert len(duckdb_rows(aws, customer)) == len(ACME_IDS) + 1


# -- (b) full refresh --------------------------------------------------------------------------


def test_full_refresh_redelivers_every_current_row(tmp_path: Path, invoices: str, aws: Any) -> None:
    app, conn, customer = setup(tmp_path, invoices, aws)
    [first] = app.transfers.run(conn.name)
    pg_exec(
        invoices,
        "UPDATE invoices SET amount = 0.01, updated_at = now() WHERE id = 1",
        "DELETE FROM invoices WHERE id = 2",
        "INSERT INTO invoices (id, tenant_id, updated_at) VALUES (100, 'acme', now())",
    )
    [refresh] = app.transfers.run(conn.name, full_refresh=True)
    assert refresh.record.type.value == "full_refresh" and refresh.record.window.low is None
    current = source_rows(invoices)
    delivered = rows_of_transfer(customer, refresh.record)
    assert sorted(r["id"] for r in delivered) == sorted(current)
    assert {r["id"]: r["amount"] for r in delivered} == {i: r["amount"] for i, r in current.items()}
    assert manifest(customer, refresh.record)["transfer_type"] == "full_refresh"
    # Append-only: the backfill's files are still there, next to the refresh's.
    assert len(duckdb_rows(aws, customer)) == first.record.rows + refresh.record.rows
    assert (
        app.adapters.state.transfers.model_state(conn.id, "invoices").high_water_mark
        == refresh.record.window.high
    )

    pg_exec(
        invoices, "INSERT INTO invoices (id, tenant_id, updated_at) VALUES (101, 'acme', now())"
    )
    [after] = app.transfers.run(conn.name)
    assert after.record.type.value == "incremental"
    assert [r["id"] for r in rows_of_transfer(customer, after.record)] == [101]


# -- (c) a source column named dt --------------------------------------------------------------


def test_source_column_dt_is_renamed_and_the_partition_is_the_transfer_date(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, customer = setup(tmp_path, invoices, aws)
    [result] = app.transfers.run(conn.name)
    assert any("'dt'" in w and "'dt_source'" in w for w in result.warnings), result.warnings
    [key] = data_keys(customer)
    names = pq.read_schema(io.BytesIO(get_bytes(customer, key))).names
    assert "dt_source" in names and "dt" not in names
    columns = {c["name"]: c["source"] for c in manifest(customer, result.record)["columns"]}
    assert columns["dt_source"] == "dt"

    rows = duckdb_rows(aws, customer)
    transfer_day = result.record.started_at.astimezone(UTC).date()
    assert {r["dt"] for r in rows} == {transfer_day}
    source = source_rows(invoices)
    assert {r["id"]: r["dt_source"] for r in rows} == {i: r["dt"] for i, r in source.items()}


# -- (d) added columns -------------------------------------------------------------------------


def test_added_column_appears_in_new_files_and_reads_null_for_old_rows(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, customer = setup(tmp_path, invoices, aws)
    [first] = app.transfers.run(conn.name)
    pg_exec(
        invoices,
        "ALTER TABLE invoices ADD COLUMN note text",
        "INSERT INTO invoices (id, tenant_id, note, updated_at) VALUES (100, 'acme', 'new ✓', now())",
    )
    [second] = app.transfers.run(conn.name)
    [old_key] = [f["key"] for f in manifest(customer, first.record)["files"]]
    [new_key] = [f["key"] for f in manifest(customer, second.record)["files"]]
    assert "note" not in pq.read_schema(io.BytesIO(get_bytes(customer, old_key))).names
    assert (
        pq.read_schema(io.BytesIO(get_bytes(customer, new_key))).field("note").type == pa.string()
    )
    assert "note" in [c["name"] for c in manifest(customer, second.record)["columns"]]

    rows = duckdb_rows(aws, customer, union_by_name=True)
    notes = {r["id"]: r["note"] for r in rows}
    assert notes == {**{i: None for i in ACME_IDS}, 100: "new ✓"}


# -- (e) type changes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "new_type", "old_name", "new_name"),
    [("amount", "text", "decimal(18,2)", "string"), ("qty", "smallint", "int", "smallint")],
)
def test_non_widening_type_change_is_refused_and_the_mark_stays(
    tmp_path: Path,
    invoices: str,
    aws: Any,
    column: str,
    new_type: str,
    old_name: str,
    new_name: str,
) -> None:
    app, conn, customer = setup(tmp_path, invoices, aws)
    app.transfers.run(conn.name)
    before = app.adapters.state.transfers.model_state(conn.id, "invoices")
    keys_before = data_keys(customer)
    pg_exec(
        invoices,
        f"ALTER TABLE invoices ALTER COLUMN {column} TYPE {new_type}",
        "INSERT INTO invoices (id, tenant_id, updated_at) VALUES (100, 'acme', now())",
    )
    with pytest.raises(SchemaChangeError) as caught:
        app.transfers.run(conn.name)
    message = caught.value.message
    assert f"'{column}'" in message and old_name in message and new_name in message, message
    assert app.adapters.state.transfers.model_state(conn.id, "invoices") == before
    assert data_keys(customer) == keys_before  # nothing written with the new type


def test_widening_type_change_is_accepted(tmp_path: Path, invoices: str, aws: Any) -> None:
    app, conn, customer = setup(tmp_path, invoices, aws)
    [first] = app.transfers.run(conn.name)
    pg_exec(
        invoices,
        "ALTER TABLE invoices ALTER COLUMN qty TYPE bigint",
        "INSERT INTO invoices (id, tenant_id, qty, updated_at) VALUES (100, 'acme', 1099511627776, now())",
    )
    [second] = app.transfers.run(conn.name)
    assert second.record.status == "succeeded" and second.record.rows == 1
    [new_key] = [f["key"] for f in manifest(customer, second.record)["files"]]
    assert pq.read_schema(io.BytesIO(get_bytes(customer, new_key))).field("qty").type == pa.int64()
    rows = duckdb_rows(aws, customer, union_by_name=True)
    assert {r["id"]: r["qty"] for r in rows} == {**{i: i for i in ACME_IDS}, 100: 2**40}
    assert (
        first.record.window.high
        < app.adapters.state.transfers.model_state(conn.id, "invoices").high_water_mark
    )


# -- (f) the settle lag ------------------------------------------------------------------------


def short_lag(tmp_path: Path, aws: Any) -> Any:
    """byob over the same state and models with the short lag, as after an operator shortens it."""
    return make_services(
        tmp_path, tmp_path / "byob.toml", aws, settle_lag_seconds=LAG.total_seconds()
    )


def test_rows_inside_the_settle_lag_wait_for_a_later_window(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    """The early run uses a lag no loaded machine outruns; the later one a short lag (see below)."""
    app, conn, customer = setup(
        tmp_path, invoices, aws, settle_lag_seconds=LONG_LAG.total_seconds()
    )
    [first] = app.transfers.run(conn.name)
    assert first.record.rows == len(ACME_IDS)
    pg_exec(
        invoices, "INSERT INTO invoices (id, tenant_id, updated_at) VALUES (100, 'acme', now())"
    )
    [early] = app.transfers.run(conn.name)
    assert early.record.rows == 0  # its cursor value is newer than now - the lag
    assert 100 not in {r["id"] for r in duckdb_rows(aws, customer)}
    inserted = source_row_time(invoices, 100)
    app = short_lag(tmp_path, aws)
    wait_for(lambda: source_now(invoices) > inserted + LAG, what="the settle lag to pass")
    [late] = app.transfers.run(conn.name)
    assert late.record.rows == 1
    [again] = app.transfers.run(conn.name)
    assert again.record.rows == 0
    ids = [r["id"] for r in duckdb_rows(aws, customer)]
    assert ids.count(100) == 1 and len(ids) == len(ACME_IDS) + 1


def test_a_row_committed_late_with_an_earlier_cursor_value_is_not_skipped(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    """The case the lag exists for: updated_at = now() is the transaction's start, which can be
    well before the commit makes the row visible.

    The run during the open transaction uses a lag far longer than any pause a loaded machine
    takes between the INSERT and the run (a 4 s lag once lost that race in CI); the run after the
    commit uses a short one, as an operator who shortens the lag would, so the test waits little.
    """
    app, conn, customer = setup(
        tmp_path, invoices, aws, settle_lag_seconds=LONG_LAG.total_seconds()
    )
    app.transfers.run(conn.name)
    with psycopg.connect(invoices) as slow:
        slow.execute("INSERT INTO invoices (id, tenant_id, updated_at) VALUES (200, 'acme', now())")
        started = slow.execute("SELECT now()").fetchone()[0]
        # The transfer runs while the row's transaction is still open, its cursor value old.
        wait_for(lambda: source_now(invoices) > started, what="the source clock to move on")
        [during] = app.transfers.run(conn.name)  # the row is not visible yet
        slow.commit()
    assert during.record.rows == 0 and during.record.window.high < started
    short = short_lag(tmp_path, aws)
    wait_for(lambda: source_now(invoices) > started + LAG, what="the settle lag to pass")
    [after] = short.transfers.run(conn.name)
    assert after.record.rows == 1
    assert [r["id"] for r in duckdb_rows(aws, customer)].count(200) == 1


@pytest.mark.parametrize(("hashed_first", "hashed_then"), [(False, True), (True, False)])
def test_a_delivered_column_hashed_or_unhashed_later_is_refused_and_the_mark_stays(
    tmp_path: Path, invoices: str, aws: Any, hashed_first: bool, hashed_then: bool
) -> None:
    """A text column keeps its type when hashed: without the check its files would mix clear
    values and hashes, silently."""
    pg_exec(invoices, "ALTER TABLE invoices ADD COLUMN email text DEFAULT 'a@example.com'")
    config = tmp_path / "byob.toml"

    def model(hashed: bool) -> dict[str, Any]:
        return MODEL | ({"hash": ["email"]} if hashed else {})

    app = make_services(tmp_path, write_config(config, invoices, [model(hashed_first)]), aws)
    conn, customer = onboard_s3(app, aws, bucket=BUCKET)
    app.transfers.run(conn.name)
    before = app.adapters.state.transfers.model_state(conn.id, "invoices")
    keys_before = data_keys(customer)
    pg_exec(
        invoices, "INSERT INTO invoices (id, tenant_id, updated_at) VALUES (100, 'acme', now())"
    )

    app = make_services(tmp_path, write_config(config, invoices, [model(hashed_then)]), aws)
    with pytest.raises(SchemaChangeError) as caught:
        app.transfers.run(conn.name)
    message = caught.value.message
    assert "'email'" in message and ("now hashes it" if hashed_then else "in clear") in message
    assert app.adapters.state.transfers.model_state(conn.id, "invoices") == before
    assert data_keys(customer) == keys_before  # nothing written in the other form

    # Back as it was delivered, the transfer goes on.
    app = make_services(tmp_path, write_config(config, invoices, [model(hashed_first)]), aws)
    app.transfers.run(conn.name)
    assert data_keys(customer) > keys_before
