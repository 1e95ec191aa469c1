"""Deletes reaching the recipient: soft deletes flagged by `_byob_deleted`, hard deletes
captured by byob's trigger and delivered as tombstones exactly once, the README's query and
the `_latest` view's SQL (run by DuckDB) leaving deleted keys out, and pruning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from byob.demo.readback import connect_s3
from byob.domain.athena import latest_view_sql
from byob.domain.transfers import TransferStatus
from byob.errors import SourceError
from tests.support import (
    before_s3_call,
    make_services,
    onboard_s3,
    pg_exec,
    pg_insert,
    write_config,
)

pytestmark = pytest.mark.integration

MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}
FILES = "read_parquet('s3://acme-data/exports/invoices/*/*.parquet', hive_partitioning = true, union_by_name = true)"


@pytest.fixture
def invoices(pg_url: str) -> str:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), deleted_at timestamptz, updated_at timestamptz NOT NULL)",
    )
    pg_insert(
        pg_url,
        "INSERT INTO invoices VALUES (%s, %s, %s, NULL, now() - interval '1 hour')",
        [(i, "acme" if i % 3 else "globex", f"{i}.25") for i in range(1, 31)],
    )
    return pg_url


def _app(
    tmp_path: Path, source: str, aws: Any, *, state: str | None = None, **model: Any
) -> tuple[Any, Any, Any]:
    config = write_config(tmp_path / "byob.toml", source, [MODEL | model])
    app = make_services(tmp_path, config, aws, **({"database_url": state} if state else {}))
    conn, customer = onboard_s3(app, aws, bucket="acme-data", base_path="exports")
    return app, conn, connect_s3(aws.endpoint_url, **customer.credentials())


def _current_ids(readback: Any) -> list[int]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    query = readme.split("-- reading-the-current-rows\n", 1)[1].split("```", 1)[0]
    return sorted(row[0] for row in readback.execute(query).fetchall())


def _spark_ids(readback: Any) -> list[int]:
    """The README's Spark SQL, its folder read the way Spark reads it (every file, the dt
    partition as a column, missing columns as NULL), run by DuckDB: no Spark here, but the
    query's logic (newest version per key, deletions win ties and drop out) is checked."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    query = readme.split("-- reading-the-current-rows-in-spark\n", 1)[1].split("```", 1)[0]
    folder = "parquet.`s3a://acme-data/exports/invoices/`"
    assert folder in query
    query = query.replace(
        folder,
        "read_parquet('s3://acme-data/exports/invoices/*/*.parquet', hive_partitioning = true, "
        "union_by_name = true)",
    )
    return sorted(row[0] for row in readback.execute(query).fetchall())


def _view_ids(readback: Any, columns: list[str]) -> list[int]:
    """The `_latest` view's SQL, as Glue stores it, over the delivered files."""
    readback.execute(
        'CREATE OR REPLACE VIEW invoices AS SELECT *, filename AS "$path" FROM read_parquet('
        "'s3://acme-data/exports/invoices/*/*.parquet', hive_partitioning = true, "
        "union_by_name = true, filename = true)"
    )
    sql = latest_view_sql(
        schema="s", model="invoices", columns=columns, primary_key=["id"], cursor="updated_at"
    )
    rows = readback.execute(sql.replace('"s"."invoices"', "invoices")).fetchall()
    return sorted(r[0] for r in rows)


ACME = [i for i in range(1, 31) if i % 3]


def test_a_soft_delete_arrives_as_a_change_flagged_deleted_and_leaves_the_current_rows(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, readback = _app(tmp_path, invoices, aws, deleted_column="deleted_at")
    [backfill] = app.transfers.run(conn.name)
    assert backfill.record.rows == len(ACME)
    pg_exec(invoices, "UPDATE invoices SET deleted_at = now(), updated_at = now() WHERE id = 1")
    [increment] = app.transfers.run(conn.name)
    assert increment.record.rows == 1

    versions = readback.execute(
        f"SELECT _byob_deleted, deleted_at IS NOT NULL FROM {FILES} WHERE id = 1 "
        "ORDER BY updated_at"
    ).fetchall()
    assert versions == [(False, False), (True, True)]
    assert readback.execute(f"SELECT count(*) FROM {FILES} WHERE _byob_deleted").fetchone() == (1,)
    assert _current_ids(readback) == [i for i in ACME if i != 1]
    assert _spark_ids(readback) == [i for i in ACME if i != 1]
    columns = ["id", "tenant_id", "amount", "deleted_at", "updated_at", "_byob_deleted"]
    assert _view_ids(readback, columns) == [i for i in ACME if i != 1]
    manifest_columns = app.adapters.state.transfers.model_state(conn.id, "invoices").columns
    assert manifest_columns is not None and manifest_columns[-1]["name"] == "_byob_deleted"


def test_a_boolean_deleted_column_is_the_flag(tmp_path: Path, pg_url: str, aws: Any) -> None:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "is_deleted boolean, updated_at timestamptz NOT NULL)",
        "INSERT INTO invoices VALUES (1, 'acme', false, now()), (2, 'acme', true, now()), "
        "(3, 'acme', NULL, now())",
    )
    app, conn, readback = _app(tmp_path, pg_url, aws, deleted_column="is_deleted")
    app.transfers.run(conn.name)
    flags = readback.execute(f"SELECT id, _byob_deleted FROM {FILES} ORDER BY id").fetchall()
    assert flags == [(1, False), (2, True), (3, False)]


def test_a_deleted_column_must_be_a_boolean_or_a_timestamp(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    config = write_config(tmp_path / "byob.toml", invoices, [MODEL | {"deleted_column": "amount"}])
    app = make_services(tmp_path, config, aws)
    with pytest.raises(Exception, match="deleted_column 'amount' is decimal"):
        app.models.check()


def _deleted_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT model, tenant, primary_key FROM byob_deleted_rows ORDER BY id"
        ).fetchall()


def test_hard_deletes_arrive_as_tombstones_once_and_leave_the_current_rows(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, readback = _app(tmp_path, invoices, aws, capture_deletes=True)
    assert [s.installed for s in app.deletes.capture_states()] == [False]
    app.deletes.install_capture("invoices")
    app.deletes.install_capture("invoices")  # idempotent: one trigger, one record per delete
    assert [(s.installed, s.problem) for s in app.deletes.capture_states()] == [(True, None)]
    [backfill] = app.transfers.run(conn.name)
    assert backfill.record.rows == len(ACME)

    pg_exec(invoices, "DELETE FROM invoices WHERE id IN (1, 2, 3)")  # 3 is globex's
    assert _deleted_rows(invoices) == [
        ("invoices", "acme", {"id": 1}),
        ("invoices", "acme", {"id": 2}),
        ("invoices", "globex", {"id": 3}),
    ]
    [increment] = app.transfers.run(conn.name)
    assert increment.record.rows == 2
    assert app.transfers.run(conn.name)[0].record.rows == 0  # delivered once, not again

    tombstones = readback.execute(
        f"SELECT id, tenant_id, amount, deleted_at, updated_at IS NOT NULL, _byob_deleted "
        f"FROM {FILES} WHERE _byob_deleted ORDER BY id"
    ).fetchall()
    assert tombstones == [(1, "acme", None, None, True, True), (2, "acme", None, None, True, True)]
    with psycopg.connect(invoices) as db:
        recorded = db.execute(
            "SELECT date_trunc('milliseconds', deleted_at) FROM byob_deleted_rows "
            "WHERE tenant = 'acme' ORDER BY id"
        ).fetchall()
    cursors = readback.execute(
        f"SELECT updated_at FROM {FILES} WHERE _byob_deleted ORDER BY id"
    ).fetchall()
    assert cursors == recorded  # the cursor is the deletion time (in milliseconds)
    assert _current_ids(readback) == [i for i in ACME if i not in (1, 2)]
    assert _spark_ids(readback) == [i for i in ACME if i not in (1, 2)]
    columns = ["id", "tenant_id", "amount", "deleted_at", "updated_at", "_byob_deleted"]
    assert _view_ids(readback, columns) == [i for i in ACME if i not in (1, 2)]

    # A key deleted, then inserted again, is current again: its new version is newer.
    pg_insert(invoices, "INSERT INTO invoices VALUES (%s, 'acme', 9, NULL, now())", [(1,)])
    app.transfers.run(conn.name)
    assert _current_ids(readback) == [i for i in ACME if i != 2]


def test_a_retry_after_a_failed_commit_delivers_each_tombstone_once(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, readback = _app(tmp_path, invoices, aws, capture_deletes=True)
    app.deletes.install_capture("invoices")
    app.transfers.run(conn.name)
    pg_exec(invoices, "DELETE FROM invoices WHERE id IN (1, 2)")
    failing = {"on": True}

    def refuse_manifest(params: dict[str, Any], **_: Any) -> None:
        if failing["on"] and "_manifests" in params.get("url_path", ""):
            raise RuntimeError("the network went away before the manifest")

    before_s3_call(app, "PutObject", refuse_manifest)
    with pytest.raises(Exception, match="network went away"):
        app.transfers.run(conn.name)  # the tombstones' file is written, nothing committed
    failing["on"] = False
    retried, after = app.transfers.run(conn.name)  # the same window again, then a new one
    assert retried.resumed and retried.record.rows == 2 and after.record.rows == 0
    assert readback.execute(
        f"SELECT id, count(*) FROM {FILES} WHERE _byob_deleted GROUP BY id ORDER BY id"
    ).fetchall() == [(1, 1), (2, 1)]


def test_prune_keeps_deletes_until_every_connection_of_the_tenant_delivered_them(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, first, _ = _app(tmp_path, invoices, aws, capture_deletes=True)
    second, _ = onboard_s3(app, aws, name="c2", bucket="acme-other", base_path="exports")
    app.deletes.install_capture("invoices")
    app.transfers.run(first.name)
    app.transfers.run(second.name)
    pg_exec(invoices, "DELETE FROM invoices WHERE id IN (1, 3)")  # acme's, globex's

    app.transfers.run(first.name)
    assert app.deletes.prune() == {"invoices": 1}  # globex has no connection: nobody waits
    assert _deleted_rows(invoices) == [("invoices", "acme", {"id": 1})]  # c2 has not had it
    app.transfers.run(second.name)
    assert app.deletes.prune() == {"invoices": 1}
    assert _deleted_rows(invoices) == []


def _tombstone_ids(readback: Any, bucket: str) -> list[int]:
    files = f"read_parquet('s3://{bucket}/exports/invoices/*/*.parquet', union_by_name = true)"
    rows = readback.execute(f"SELECT id FROM {files} WHERE _byob_deleted ORDER BY id")
    return [row[0] for row in rows.fetchall()]


def _deleted_at(url: str, key: int) -> Any:
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT deleted_at FROM byob_deleted_rows WHERE primary_key = %s::jsonb",
            (f'{{"id": {key}}}',),
        ).fetchone()
    assert row is not None
    return row[0]


def test_prune_keeps_the_deletes_a_running_backfill_leaves_to_the_next_transfer(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, readback = _app(tmp_path, invoices, aws, capture_deletes=True)
    app.deletes.install_capture("invoices")
    pruned: list[dict[str, int]] = []

    def delete_and_prune(params: dict[str, Any], **_: Any) -> None:
        if pruned or not params.get("url_path", "").endswith(".parquet"):
            return
        # The backfill's query has started (its first file is going up), so row 1 is in its
        # snapshot; deleted now, its tombstone is newer than the window: only the next
        # transfer delivers it, and nothing of the tenant has a mark yet.
        [running] = app.adapters.state.transfers.pending(conn.id, "invoices")
        assert running.status is TransferStatus.RUNNING
        pg_exec(invoices, "DELETE FROM invoices WHERE id = 1")
        pruned.append(app.deletes.prune())

    before_s3_call(app, "PutObject", delete_and_prune)
    [backfill] = app.transfers.run(conn.name)
    assert backfill.record.rows == len(ACME)  # row 1 among them
    assert pruned == [{"invoices": 0}]
    assert _deleted_rows(invoices) == [("invoices", "acme", {"id": 1})]
    assert _deleted_at(invoices, 1) > backfill.record.window.high

    [increment] = app.transfers.run(conn.name)
    assert increment.record.rows == 1
    assert _tombstone_ids(readback, "acme-data") == [1]
    assert _current_ids(readback) == [i for i in ACME if i != 1]
    assert app.deletes.prune() == {"invoices": 1}  # delivered: no one waits any more


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return str(request.getfixturevalue("state_pg_url"))


def test_prune_keeps_deletes_past_the_backfill_another_connection_of_the_tenant_has_planned(
    tmp_path: Path, invoices: str, aws: Any, state_url: str
) -> None:
    app, first, _ = _app(tmp_path, invoices, aws, state=state_url, capture_deletes=True)
    second, customer = onboard_s3(app, aws, name="c2", bucket="acme-other", base_path="exports")
    app.deletes.install_capture("invoices")
    app.transfers.run(first.name)
    [backfill] = app.transfers.plan(second, "invoices")  # its window is fixed, not yet run
    pg_exec(invoices, "DELETE FROM invoices WHERE id = 1")
    assert _deleted_at(invoices, 1) > backfill.window.high
    app.transfers.run(first.name)  # the first connection's mark passes the delete

    assert app.deletes.prune() == {"invoices": 0}  # the second still reads after its window
    assert _deleted_rows(invoices) == [("invoices", "acme", {"id": 1})]
    [planned] = app.transfers.run(second.name)  # the backfill it planned, row 1 gone
    assert planned.record.id == backfill.id
    [after] = app.transfers.run(second.name)  # the window after it: the tombstone
    assert after.record.rows == 1
    readback = connect_s3(aws.endpoint_url, **customer.credentials())
    assert _tombstone_ids(readback, "acme-other") == [1]
    assert app.deletes.prune() == {"invoices": 1}
    assert _deleted_rows(invoices) == []


def test_the_scheduler_prunes_delivered_deletes_hourly(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    from datetime import timedelta

    from byob.workers.scheduler import Scheduler

    app, first, _ = _app(tmp_path, invoices, aws, capture_deletes=True)
    app.deletes.install_capture("invoices")
    app.transfers.run(first.name)
    pg_exec(invoices, "DELETE FROM invoices WHERE id = 1")
    now = app.now()
    scheduler = Scheduler(app, lambda conn: None, clock=lambda: now)
    scheduler.tick()  # the first tick prunes: nothing delivered yet, so the delete stays
    assert _deleted_rows(invoices) == [("invoices", "acme", {"id": 1})]
    app.transfers.run(first.name)
    now += timedelta(minutes=30)
    scheduler.tick()  # within the hour: not yet
    assert _deleted_rows(invoices) == [("invoices", "acme", {"id": 1})]
    now += timedelta(minutes=31)
    scheduler.tick()
    assert _deleted_rows(invoices) == []


def test_capture_deletes_without_capture_installed_fails_the_transfer_saying_what_to_do(
    tmp_path: Path, invoices: str, aws: Any
) -> None:
    app, conn, _ = _app(tmp_path, invoices, aws, capture_deletes=True)
    [state] = app.deletes.capture_states()
    assert state.problem is not None and "capture-deletes invoices --apply" in state.problem
    with pytest.raises(SourceError, match="capture-deletes invoices --apply"):
        app.transfers.run(conn.name)
