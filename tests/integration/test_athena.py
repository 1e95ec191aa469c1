"""Athena connections: Glue tables with partition projection, kept in step with the source,
and a `<model>_latest` view whose SQL DuckDB runs over the delivered files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from byob.demo.readback import connect_s3
from byob.domain.athena import decode_view
from tests.support import make_services, onboard_athena, pg_exec, pg_insert, write_config

pytestmark = pytest.mark.integration

MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


@pytest.fixture
def source(pg_url: str) -> str:
    pg_exec(
        pg_url,
        'CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "Amount" numeric(18,2), '
        "dt date, small integer, updated_at timestamptz NOT NULL)",
    )
    pg_insert(
        pg_url,
        "INSERT INTO invoices VALUES (%s, %s, %s, '2026-01-02', 1, now() - interval '1 hour')",
        [(i, "acme" if i % 4 else "globex", f"{i}.50") for i in range(1, 201)],
    )
    return pg_url


def _onboard(app: Any, aws: Any) -> tuple[Any, Any]:
    conn, customer, checks = onboard_athena(app, aws)
    outcomes = {c.name: c.outcome.value for c in checks}
    assert outcomes == {
        "assume_role": "passed",
        "external_id_required": "warning",
        "bucket_region": "passed",
        "write_test_object": "passed",
        "delete_test_object": "passed",
        "workgroup": "passed",
        "glue_database": "passed",
        "athena_query": "passed",
        "athena_output_location": "passed",
    }, [c.as_dict() for c in checks]
    return conn, customer


def test_athena_connection_creates_the_glue_table_and_view(
    tmp_path: Path, source: str, aws: Any
) -> None:
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", source, [MODEL]), aws)
    conn, customer = _onboard(app, aws)
    [result] = app.transfers.run(conn.name)
    assert result.record.rows == 150

    glue = customer.client("glue")
    table = glue.get_table(DatabaseName="billing", Name="invoices")["Table"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["StorageDescriptor"]["Columns"] == [
        {"Name": "id", "Type": "bigint"},
        {"Name": "tenant_id", "Type": "string"},
        {"Name": "amount", "Type": "decimal(18,2)"},
        {"Name": "dt_source", "Type": "date"},
        {"Name": "small", "Type": "int"},
        {"Name": "updated_at", "Type": "timestamp"},
    ]
    assert table["StorageDescriptor"]["Location"] == "s3://lake/billing/invoices/"
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith(
        "ParquetHiveSerDe"
    )
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    params = table["Parameters"]
    day = result.record.started_at.date().isoformat()
    assert params["projection.enabled"] == "true"
    assert params["projection.dt.range"] == f"{day},NOW"
    assert params["storage.location.template"] == "s3://lake/billing/invoices/dt=${dt}/"

    # A column added at the source reaches Glue before files carrying it; a widened type too.
    pg_exec(
        source,
        "ALTER TABLE invoices ADD COLUMN note text",
        "ALTER TABLE invoices ALTER COLUMN small TYPE bigint",
        "UPDATE invoices SET note = 'n', updated_at = now() WHERE id IN (1, 2)",
    )
    app.transfers.run(conn.name)
    columns = glue.get_table(DatabaseName="billing", Name="invoices")["Table"]["StorageDescriptor"][
        "Columns"
    ]
    assert columns[-1] == {"Name": "note", "Type": "string"}
    assert {"Name": "small", "Type": "bigint"} in columns

    # A dropped column stays in the table: older files still carry it.
    pg_exec(source, "ALTER TABLE invoices DROP COLUMN note")
    app.transfers.run(conn.name)
    columns = glue.get_table(DatabaseName="billing", Name="invoices")["Table"]["StorageDescriptor"][
        "Columns"
    ]
    assert {"Name": "note", "Type": "string"} in columns

    con = connect_s3(aws.endpoint_url, **customer.credentials())
    # What Athena's table is to the view, DuckDB reads from the same files ("$path" included).
    con.execute(
        'CREATE VIEW invoices AS SELECT *, filename AS "$path" FROM read_parquet('
        "'s3://lake/billing/invoices/*/*.parquet', hive_partitioning = true, "
        "union_by_name = true, filename = true)"
    )

    def latest() -> list[Any]:
        view = glue.get_table(DatabaseName="billing", Name="invoices_latest")["Table"]
        assert view["TableType"] == "VIRTUAL_VIEW" and view["Parameters"]["presto_view"] == "true"
        sql = decode_view(view["ViewOriginalText"])["originalSql"]
        return con.execute(sql.replace('"billing"."invoices"', "invoices")).fetchall()

    rows = latest()
    assert len(rows) == 150  # one row per id, however many versions were delivered
    by_id = {row[0]: row for row in rows}
    total = con.execute("SELECT count(*) FROM invoices").fetchone()[0]
    assert total == 152  # two updated rows arrived twice
    note_index = [c["Name"] for c in columns].index("note")
    assert by_id[1][note_index] == "n" and by_id[3][note_index] is None

    # A row deleted at the source leaves the view with the next full refresh, whose files
    # are the new snapshot: the view reads from them on.
    pg_exec(source, "DELETE FROM invoices WHERE id = 5")
    [refresh] = app.transfers.run(conn.name, full_refresh=True)
    assert refresh.record.rows == 149
    rows = latest()
    assert len(rows) == 149 and 5 not in {row[0] for row in rows}
    assert con.execute("SELECT count(*) FROM invoices WHERE id = 5").fetchone()[0] == 1  # kept


def test_glue_tables_and_views_follow_the_model_selection(
    tmp_path: Path, source: str, aws: Any
) -> None:
    pg_exec(
        source,
        "CREATE TABLE payments (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
        "INSERT INTO payments SELECT i, 'acme', now() - interval '1 hour' "
        "FROM generate_series(1, 30) i",
    )
    payments = MODEL | {"name": "payments", "table": "payments"}
    config = write_config(tmp_path / "byob.toml", source, [MODEL, payments])
    app = make_services(tmp_path, config, aws)
    conn, customer = _onboard(app, aws)
    app.transfers.run(conn.name)
    glue = customer.client("glue")

    def tables() -> set[str]:
        return {t["Name"] for t in glue.get_tables(DatabaseName="billing")["TableList"]}

    assert tables() == {"invoices", "invoices_latest", "payments", "payments_latest"}
    # The recipient's own table and view in the same database are never byob's to drop.
    glue.create_table(
        DatabaseName="billing",
        TableInput={
            "Name": "payments_mine",
            "TableType": "EXTERNAL_TABLE",
            "StorageDescriptor": {"Columns": [], "Location": "s3://lake/mine/"},
        },
    )
    glue.create_table(
        DatabaseName="billing",
        TableInput={
            "Name": "mine_latest",
            "TableType": "VIRTUAL_VIEW",
            "ViewOriginalText": "/* Presto View: bm90IGpzb24= */",
            "StorageDescriptor": {"Columns": [], "Location": ""},
        },
    )

    # Deselected: the next run drops its table and view; its files stay.
    app.connections.update(conn.name, {"models": ["invoices"]}, actor="op")
    app.transfers.run(conn.name)
    assert tables() == {"invoices", "invoices_latest", "payments_mine", "mine_latest"}
    s3 = customer.client("s3")
    kept = s3.list_objects_v2(Bucket="lake", Prefix="billing/payments/")
    assert any(o["Key"].endswith(".parquet") for o in kept.get("Contents", []))

    # Selected again: the backfill recreates them.
    app.connections.update(conn.name, {"models": ["*"]}, actor="op")
    results = app.transfers.run(conn.name)
    assert {r.record.model: r.record.rows for r in results}["payments"] == 30
    assert tables() == {
        "invoices",
        "invoices_latest",
        "payments",
        "payments_latest",
        "payments_mine",
        "mine_latest",
    }


def test_model_named_athena_output_is_refused() -> None:
    from byob.domain.models import ModelSpec
    from byob.errors import ConfigError

    with pytest.raises(ConfigError, match="reserved"):
        ModelSpec(
            name="athena_output",
            table="t",
            tenant_column="a",
            cursor_column="b",
            primary_key=("id",),
        )
