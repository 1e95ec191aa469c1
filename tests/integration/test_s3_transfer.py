"""A PostgreSQL source delivered into an S3 bucket in the emulator, read back by DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byob.demo.readback import connect_s3
from tests.support import make_services, onboard_s3, pg_exec, pg_insert, write_config

pytestmark = pytest.mark.integration

MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


@pytest.fixture
def invoices(pg_url: str) -> str:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz NOT NULL)",
    )
    pg_insert(
        pg_url,
        "INSERT INTO invoices VALUES (%s, %s, %s, now() - interval '1 hour')",
        [(i, "acme" if i % 3 else "globex", f"{i}.25") for i in range(1, 301)],
    )
    return pg_url


def test_backfill_then_incremental_delivers_each_row_version_once(
    tmp_path: Path, invoices: str, aws
) -> None:
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", invoices, [MODEL]), aws)
    conn, customer = onboard_s3(app, aws)

    first = app.transfers.run(conn.name)
    assert [r.record.rows for r in first] == [200]
    pg_exec(
        invoices,
        "UPDATE invoices SET amount = amount + 1, updated_at = now() WHERE id IN (1, 2, 3)",
    )
    pg_insert(invoices, "INSERT INTO invoices VALUES (%s, %s, %s, now())", [(1001, "acme", "9.99")])
    second = app.transfers.run(conn.name)
    assert second[0].record.type.value == "incremental"
    assert second[0].record.rows == 3  # ids 1, 2 and 1001 (3 is globex's)

    con = connect_s3(aws.endpoint_url, **customer.credentials())
    rows = con.execute(
        "SELECT id, amount, tenant_id FROM read_parquet('s3://bkt/exports/invoices/*/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    assert len(rows) == 203
    assert {r[2] for r in rows} == {"acme"}
    assert sorted(r[1] for r in rows if r[0] == 1) == [pytest.approx(1.25), pytest.approx(2.25)]

    manifests = [o["Key"] for o in customer.keys("bkt", "exports/_manifests/invoices/")]
    assert len(manifests) == 2
    body = json.loads(
        customer.client("s3").get_object(Bucket="bkt", Key=sorted(manifests)[0])["Body"].read()
    )
    assert body["rows"] in (200, 3) and all(f["sha256"] for f in body["files"])


def test_the_readme_query_reads_the_newest_snapshot_and_the_increments_after_it(
    tmp_path: Path, invoices: str, aws
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    query = readme.split("-- reading-the-newest-snapshot\n", 1)[1].split("```", 1)[0]
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", invoices, [MODEL]), aws)
    conn, customer = onboard_s3(app, aws, bucket="acme-data", base_path="exports")
    app.transfers.run(conn.name)  # the backfill: the first snapshot
    pg_exec(invoices, "UPDATE invoices SET amount = 1, updated_at = now() WHERE id = 1")
    app.transfers.run(conn.name)
    pg_exec(invoices, "DELETE FROM invoices WHERE id = 2")
    [refresh] = app.transfers.run(conn.name, full_refresh=True)  # the new snapshot
    pg_exec(invoices, "UPDATE invoices SET amount = 2, updated_at = now() WHERE id = 4")
    app.transfers.run(conn.name)

    con = connect_s3(aws.endpoint_url, **customer.credentials())
    ids = sorted(row[0] for row in con.execute(query).fetchall())
    current = [i for i in range(1, 301) if i % 3 and i != 2]
    assert refresh.record.rows == len(current)
    assert ids == sorted([*current, 4])  # the snapshot, and id 4's later version
    every = con.execute(
        "SELECT count(*) FROM read_parquet('s3://acme-data/exports/invoices/*/*.parquet')"
    ).fetchone()
    assert every is not None and every[0] > len(ids)  # the files still hold every version
