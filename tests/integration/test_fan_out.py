"""`transfers run --all`: one scan of a model's table feeds every connection due (a fan-out),
and each connection still gets exactly its own tenant's window, files, manifest and record.

The PostgreSQL source's per-tenant read is made to fail in these tests wherever a fan-out
must not need it, so "one scan" is checked, not assumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from byob.demo.readback import connect_s3
from byob.engine import parquet_files
from byob.services import Services
from byob.sources.postgres import AdbcPostgresSource
from byob.workers.local import LocalWorkers
from byob.workers.scheduler import Scheduler
from tests.kill_points import killer_script
from tests.support import (
    RecordedEvents,
    before_s3_call,
    make_services,
    onboard_athena,
    onboard_s3,
    pg_exec,
    write_config,
)

pytestmark = pytest.mark.integration

TENANTS = ("acme", "globex", "initech", "umbrella")
PER_TENANT = 12_000
MODEL = {
    "name": "events",
    "table": "events",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


def add_rows(url: str, first: int, count: int, *, minutes_ago: int) -> None:
    """``count`` rows per tenant (and as many of a tenant no connection serves), ids from
    ``first``, their cursors ``minutes_ago`` minutes back."""
    tenants = "ARRAY[" + ", ".join(f"'{t}'" for t in (*TENANTS, "nobody")) + "]"
    pg_exec(
        url,
        "INSERT INTO events SELECT i, "
        f"({tenants})[1 + (i % {len(TENANTS) + 1})], "
        "(i % 100000) / 100.0, md5(i::text) || md5((i * 3)::text), "
        f"now() - interval '{minutes_ago} minutes' - (i % 1000) * interval '1 millisecond' "
        f"FROM generate_series({first}, {first + count * (len(TENANTS) + 1) - 1}) AS i",
    )


@pytest.fixture
def source(pg_url: str) -> str:
    pg_exec(
        pg_url,
        "CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(12,2), payload text, updated_at timestamptz NOT NULL)",
        "CREATE INDEX ON events (tenant_id, updated_at)",
    )
    add_rows(pg_url, 1, PER_TENANT, minutes_ago=60)
    return pg_url


def local_app(tmp_path: Path, source: str, **settings: Any) -> Services:
    config = write_config(tmp_path / "byob.toml", source, [MODEL])
    app = make_services(tmp_path, config, **settings)
    for tenant in TENANTS:
        connect_local(app, tmp_path, f"c-{tenant}", tenant)
    return app


def connect_local(app: Services, tmp_path: Path, name: str, tenant: str) -> None:
    app.connections.create(
        actor="cli", name=name, tenant=tenant, type="local", path=str(tmp_path / "out" / name)
    )
    assert app.connections.validate(name, actor="cli").passed
    app.connections.activate(name, actor="cli")


def expected_ids(url: str, tenant: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT id FROM events WHERE tenant_id = %s ORDER BY id", (tenant,))
        return [r[0] for r in rows]


def delivered_ids(path: Path) -> list[int]:
    files = sorted(path.glob("events/dt=*/*.parquet"))
    if not files:
        return []
    return sorted(ds.dataset(files, format="parquet").to_table(columns=["id"])["id"].to_pylist())


def delivered_s3_ids(aws: Any, customer: Any, prefix: str) -> list[int]:
    """The ids in every data file under ``prefix`` (a model's Hive-style partitions), read
    with the customer's own credentials by DuckDB."""
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    rows = con.execute(f"SELECT id FROM read_parquet('{prefix}/*/*.parquet')").fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture
def one_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A per-tenant read fails the test: every read must be the shared one."""

    def read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was read on its own")

    monkeypatch.setattr(AdbcPostgresSource, "read", read)


def test_one_scan_feeds_every_connection_its_own_rows(
    tmp_path: Path, source: str, one_scan: None
) -> None:
    app = local_app(tmp_path, source)

    outcome = app.transfers.run_all()

    assert outcome.failures == []
    assert sorted(c.name for c, _ in outcome.results) == sorted(f"c-{t}" for t in TENANTS)
    highs = {r.record.window.high for _, r in outcome.results}
    assert len(highs) == 1, "windows planned together end together"
    for conn, result in outcome.results:
        assert result.record.status == "succeeded" and result.record.rows == PER_TENANT
        out = tmp_path / "out" / conn.name
        assert delivered_ids(out) == expected_ids(source, conn.tenant)
        manifest = json.loads((out / result.record.manifest_key).read_text())
        assert manifest["tenant"] == conn.tenant and manifest["connection"] == conn.name
        assert sum(f["rows"] for f in manifest["files"]) == PER_TENANT


def test_connections_with_different_windows_share_the_scan(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = local_app(tmp_path, source)
    app.transfers.run("c-acme")  # acme is ahead: its next window starts where this one ended
    time.sleep(1.1)  # the new rows' cursors (up to a second before now) fall after its window
    add_rows(source, 1_000_000, 500, minutes_ago=0)
    monkeypatch.setattr(AdbcPostgresSource, "read", lambda *a, **k: pytest.fail("read alone"))

    outcome = app.transfers.run_all()

    assert outcome.failures == []
    kinds = {c.tenant: (r.record.type.value, r.record.rows) for c, r in outcome.results}
    assert kinds == {
        "acme": ("incremental", 500),
        **{t: ("full_refresh", PER_TENANT + 500) for t in TENANTS if t != "acme"},
    }
    for tenant in TENANTS:
        assert delivered_ids(tmp_path / "out" / f"c-{tenant}") == expected_ids(source, tenant)


def test_two_connections_of_one_tenant_each_get_every_row(
    tmp_path: Path, source: str, one_scan: None
) -> None:
    app = local_app(tmp_path, source)
    connect_local(app, tmp_path, "c-acme-2", "acme")

    outcome = app.transfers.run_all()

    assert outcome.failures == [] and len(outcome.results) == len(TENANTS) + 1
    for name in ("c-acme", "c-acme-2"):
        assert delivered_ids(tmp_path / "out" / name) == expected_ids(source, "acme")


def test_a_column_received_in_clear_then_hashed_fails_only_the_connections_that_received_it(
    tmp_path: Path, source: str, one_scan: None
) -> None:
    app = local_app(tmp_path, source)
    app.transfers.run_all(model="events")  # every connection receives payload in clear
    new = ("c-new-acme", "c-new-globex")  # and two that have received nothing yet
    for name in new:
        connect_local(app, tmp_path, name, name.removeprefix("c-new-"))
    hashed = write_config(tmp_path / "byob.toml", source, [MODEL | {"hash": ["payload"]}])
    app = make_services(tmp_path, hashed)

    outcome = app.transfers.run_all()

    failed = {c.name: e.code for c, e in outcome.failures}
    assert failed == {f"c-{t}": "schema_change" for t in TENANTS}
    assert sorted(c.name for c, _ in outcome.results) == list(new)
    for conn, result in outcome.results:
        assert result.record.rows == PER_TENANT
        files = sorted((tmp_path / "out" / conn.name).glob("events/dt=*/*.parquet"))
        payloads = ds.dataset(files, format="parquet").to_table(columns=["payload"])["payload"]
        assert all(len(p) == 64 for p in payloads.to_pylist())  # hashes, in hex


def test_a_destination_that_fails_fails_only_its_connection(
    tmp_path: Path, source: str, one_scan: None
) -> None:
    app = local_app(tmp_path, source)
    blocked = tmp_path / "out" / "c-globex"
    blocked.rename(tmp_path / "gone")
    blocked.write_text("a file where the directory was")

    outcome = app.transfers.run_all()

    [(failed, error)] = outcome.failures
    assert failed.name == "c-globex" and "c-globex" in error.message
    conn = app.connections.get("c-globex")
    [record] = app.adapters.state.transfers.history(conn.id)
    assert record.status == "failed"
    assert app.adapters.state.transfers.model_state(conn.id, "events").high_water_mark is None
    for tenant in ("acme", "initech", "umbrella"):
        assert delivered_ids(tmp_path / "out" / f"c-{tenant}") == expected_ids(source, tenant)


def test_a_value_one_tenant_cannot_hold_fails_only_that_tenant(tmp_path: Path, source: str) -> None:
    """A NaN in one tenant's numeric fails the shared scan; the connections then run alone,
    and the failure lands on the tenant whose row it is."""
    pg_exec(
        source,
        "UPDATE events SET amount = 'NaN' WHERE id = (SELECT min(id) FROM events "
        "WHERE tenant_id = 'initech')",
    )
    app = local_app(tmp_path, source)

    outcome = app.transfers.run_all()

    [(failed, error)] = outcome.failures
    assert failed.tenant == "initech" and "amount" in error.message
    for tenant in ("acme", "globex", "umbrella"):
        assert delivered_ids(tmp_path / "out" / f"c-{tenant}") == expected_ids(source, tenant)
    assert delivered_ids(tmp_path / "out" / "c-initech") == []


def test_a_connection_whose_model_fails_sits_out_its_later_models(
    tmp_path: Path, source: str
) -> None:
    """As `transfers run NAME` stops at a connection's first failing model, so does
    `--all`: the tenant whose row the first model cannot hold gets no transfer of the
    second; the others get both."""
    pg_exec(
        source,
        "UPDATE events SET amount = 'NaN' WHERE id = (SELECT min(id) FROM events "
        "WHERE tenant_id = 'initech')",
    )
    second = {
        "name": "event_times",
        "query": "SELECT id, tenant_id, updated_at FROM events",
        "tenant_column": "tenant_id",
        "cursor_column": "updated_at",
        "primary_key": ["id"],
    }
    config = write_config(tmp_path / "byob.toml", source, [MODEL, second])
    app = make_services(tmp_path, config)
    for tenant in TENANTS:
        connect_local(app, tmp_path, f"c-{tenant}", tenant)

    outcome = app.transfers.run_all()

    [(failed, error)] = outcome.failures
    assert failed.tenant == "initech" and "amount" in error.message
    ran = sorted((c.tenant, r.record.model) for c, r in outcome.results)
    assert ran == sorted(
        (t, m) for t in TENANTS for m in ("events", "event_times") if t != "initech"
    )
    initech = app.connections.get("c-initech")
    assert [r.model for r in app.adapters.state.transfers.history(initech.id)] == ["events"]


def test_past_the_shared_budget_buffers_go_to_disk_and_row_groups_stay_whole(
    tmp_path: Path, source: str, one_scan: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget far below the connections' buffers, they are spilled to local files
    again and again; each connection's rows still make one whole row group, not a row group
    per spill."""
    spills: list[int] = []
    real_write = parquet_files._Spill.write

    def write(self: Any, batches: Any, nbytes: int) -> None:
        spills.append(nbytes)
        real_write(self, batches, nbytes)

    monkeypatch.setattr(parquet_files._Spill, "write", write)
    app = local_app(tmp_path, source, fan_out_buffer_bytes=1 << 20)

    outcome = app.transfers.run_all()

    assert outcome.failures == []
    assert len(spills) >= 2 * len(TENANTS)  # every connection, more than once
    for tenant in TENANTS:
        out = tmp_path / "out" / f"c-{tenant}"
        assert delivered_ids(out) == expected_ids(source, tenant)
        [data] = out.glob("events/dt=*/*.parquet")
        assert pq.ParquetFile(data).num_row_groups == 1


def test_fan_out_set_to_one_reads_each_connection_alone(tmp_path: Path, source: str) -> None:
    app = local_app(tmp_path, source, fan_out_connections=1)
    reads: list[str] = []
    real = AdbcPostgresSource.read

    def read(self: AdbcPostgresSource, model: Any, tenant: str, window: Any) -> Any:
        reads.append(tenant)
        return real(self, model, tenant, window)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AdbcPostgresSource, "read", read)
        outcome = app.transfers.run_all()

    assert outcome.failures == [] and sorted(reads) == sorted(TENANTS)


# -- kill -9 during a fan-out to S3 ---------------------------------------------------------

TUNING = {  # small row groups and files: several files per connection, committed mid-scan
    "BYOB_FILE_TARGET_BYTES": str(1 << 20),
    "BYOB_ROW_GROUP_BYTES": str(256 << 10),
    "BYOB_MULTIPART_PART_BYTES": str(5 << 20),
    "BYOB_SETTLE_LAG_SECONDS": "0",
}


KILLER = killer_script(
    """
    from byob.store.transfers import Transfers
    from byob.destinations import spool

    if point == "file_recorded":      # files of several connections durable and recorded
        die_at(Transfers, "file_committed", after=True)
    elif point == "object_sent":      # a spooled file uploaded whole, not yet recorded
        die_at(spool._SpooledWriter, "commit", after=True)
    elif point == "before_commit":    # some connections committed, the others not yet
        die_at(Transfers, "commit", after=False)
    """
)


def test_kills_during_a_fan_out_to_s3_then_a_rerun_deliver_exactly_once(
    tmp_path: Path, source: str, aws: Any
) -> None:
    add_rows(source, 2_000_000, 4 * PER_TENANT, minutes_ago=30)  # several files per connection
    config = write_config(tmp_path / "byob.toml", source, [MODEL])
    app = make_services(tmp_path, config, aws)
    customers = {
        t: onboard_s3(app, aws, name=f"c-{t}", tenant=t, bucket=f"bkt-{t}")[1] for t in TENANTS
    }
    env = (
        dict(os.environ)
        | TUNING
        | {
            "BYOB_HOME": str(tmp_path / ".byob"),
            "BYOB_CONFIG": str(config),
            "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        }
    )
    run_all = ["transfers", "run", "--all", "--json"]
    for point, nth in (("file_recorded", 3), ("object_sent", 6), ("before_commit", 2)):
        killed = subprocess.run(
            [sys.executable, "-c", KILLER, point, str(nth), "--", *run_all],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    final = subprocess.run(
        [sys.executable, "-m", "byob.cli", *run_all],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr

    for tenant, customer in customers.items():
        delivered = delivered_s3_ids(aws, customer, f"s3://bkt-{tenant}/exports/events")
        assert delivered == expected_ids(source, tenant), f"{tenant}: rows missing or doubled"
        s3 = customer.client("s3")
        assert s3.list_multipart_uploads(Bucket=f"bkt-{tenant}").get("Uploads", []) == []
        history = app.adapters.state.transfers.history(app.connections.get(f"c-{tenant}").id)
        assert [r.status for r in history] == ["succeeded"] * len(history)
        # The interrupted window was finished by a later attempt under the same file names.
        assert max(r.attempts for r in history) >= 2
        listed = set()  # every visible data file is listed by a manifest
        for record in history:
            if record.manifest_key:
                body = s3.get_object(Bucket=f"bkt-{tenant}", Key=record.manifest_key)["Body"]
                listed |= {f["key"] for f in json.loads(body.read())["files"]}
        contents = s3.list_objects_v2(Bucket=f"bkt-{tenant}", Prefix="exports/events/dt=")
        assert {o["Key"] for o in contents["Contents"]} == listed


# -- the scheduler's page of due connections, through the embedded workers ----------------------


def test_the_embedded_scheduler_runs_a_models_due_connections_from_one_scan(
    tmp_path: Path, source: str, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tick, three connections due: one shared scan; the connection whose upload is
    throttled once fails only its part, is retried alone and delivers exactly once, and no
    failure is told (it was not final)."""
    config = write_config(tmp_path / "byob.toml", source, [MODEL])
    app = make_services(tmp_path, config, aws)
    tenants = TENANTS[:3]
    customers = {
        t: onboard_s3(app, aws, name=f"c-{t}", tenant=t, bucket=f"bkt-{t}")[1] for t in tenants
    }
    throttled: list[str] = []

    def throttle_globex_once(params: dict[str, Any], **_: Any) -> None:
        # `params` is the request being built: its URL names the bucket.
        if "bkt-globex" in params.get("url", "") and not throttled:
            throttled.append(params["url"])
            raise ClientError(
                {
                    "Error": {"Code": "SlowDown", "Message": "injected by the test"},
                    "ResponseMetadata": {"HTTPStatusCode": 503},
                },
                "PutObject",
            )

    before_s3_call(app, "PutObject", throttle_globex_once)
    scans, alone = count_reads(monkeypatch)
    events = RecordedEvents()
    app.adapters.events = events
    sleeps: list[float] = []
    workers = LocalWorkers(app, sleep=sleeps.append)
    app.transfers.dispatcher = workers
    try:
        dispatched = Scheduler(app).tick()
        for future in list(workers.futures):
            future.result(timeout=180)
    finally:
        workers.shutdown()
        app.transfers.dispatcher = None

    assert sorted(dispatched) == sorted(f"c-{t}" for t in tenants)
    assert scans == [3] and alone == ["globex"] and len(throttled) == 1 and len(sleeps) == 1
    assert events.names() == ["transfer.succeeded"] * 3
    for tenant, customer in customers.items():
        delivered = delivered_s3_ids(aws, customer, f"s3://bkt-{tenant}/exports/events")
        assert delivered == expected_ids(source, tenant)
        [record] = app.adapters.state.transfers.history(app.connections.get(f"c-{tenant}").id)
        assert (record.status, record.attempts) == ("succeeded", 2 if tenant == "globex" else 1)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[str]]:
    """The shared scans (as their member counts) and the tenants read alone, as they happen."""
    scans: list[int] = []
    alone: list[str] = []
    real_members, real_read = AdbcPostgresSource.read_members, AdbcPostgresSource.read

    def read_members(self: Any, model: Any, members: Any) -> Any:
        scans.append(len(members))
        return real_members(self, model, members)

    def read(self: Any, model: Any, tenant: str, window: Any) -> Any:
        alone.append(tenant)
        return real_read(self, model, tenant, window)

    monkeypatch.setattr(AdbcPostgresSource, "read_members", read_members)
    monkeypatch.setattr(AdbcPostgresSource, "read", read)
    return scans, alone


def three_due_local(tmp_path: Path, source: str) -> tuple[Services, RecordedEvents]:
    config = write_config(tmp_path / "byob.toml", source, [MODEL])
    app = make_services(tmp_path, config)
    for tenant in TENANTS[:3]:
        connect_local(app, tmp_path, f"c-{tenant}", tenant)
    events = RecordedEvents()
    app.adapters.events = events
    return app, events


def test_a_connection_deleted_while_its_group_waits_sits_out_and_the_others_share_the_scan(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three connections due; one is deleted while their shared run waits for a worker: the
    other two still share one scan and get exactly their rows, and every lock is let go."""
    app, events = three_due_local(tmp_path, source)
    scans, alone = count_reads(monkeypatch)
    workers = LocalWorkers(app, threads=1, sleep=lambda _: None)
    gate = threading.Event()
    workers._pool.submit(gate.wait)  # the only worker is busy: the group's run waits
    try:
        runs = [(app.connections.get(f"c-{t}"), ["events"]) for t in TENANTS[:3]]
        triggered = workers.trigger_many(runs)
        app.connections.delete("c-globex", actor="cli")
        gate.set()
        for future in list(workers.futures):
            future.result(timeout=180)
    finally:
        gate.set()
        workers.shutdown()

    assert [t.queued for t in triggered] == [["events"]] * 3
    assert scans == [2] and alone == []
    assert events.names() == ["transfer.succeeded"] * 2
    assert workers.queue_depth() == (0, 0.0)
    assert delivered_ids(tmp_path / "out" / "c-globex") == []
    for tenant in ("acme", "initech"):
        assert delivered_ids(tmp_path / "out" / f"c-{tenant}") == expected_ids(source, tenant)
        [record] = app.adapters.state.transfers.history(app.connections.get(f"c-{tenant}").id)
        assert (record.status, record.attempts) == ("succeeded", 1)


def test_a_shared_run_that_fails_as_a_whole_runs_each_connection_alone(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared run raises before any window is fixed (a state store that blinked): each of
    the three connections still runs, alone, and gets exactly its rows."""
    app, events = three_due_local(tmp_path, source)
    scans, alone = count_reads(monkeypatch)
    real_run_fanned = app.transfers.run_fanned
    failed: list[int] = []

    def fail_once(model: str, conns: list[Any], **kwargs: Any) -> Any:
        if not failed:
            failed.append(len(conns))
            raise RuntimeError("the state store went away (injected by the test)")
        return real_run_fanned(model, conns, **kwargs)

    monkeypatch.setattr(app.transfers, "run_fanned", fail_once)
    workers = LocalWorkers(app, sleep=lambda _: None)
    try:
        workers.trigger_many([(app.connections.get(f"c-{t}"), ["events"]) for t in TENANTS[:3]])
        for future in list(workers.futures):
            future.result(timeout=180)
    finally:
        workers.shutdown()

    assert failed == [3] and scans == [] and sorted(alone) == sorted(TENANTS[:3])
    assert events.names() == ["transfer.succeeded"] * 3
    assert workers.queue_depth() == (0, 0.0)
    for tenant in TENANTS[:3]:
        assert delivered_ids(tmp_path / "out" / f"c-{tenant}") == expected_ids(source, tenant)
        [record] = app.adapters.state.transfers.history(app.connections.get(f"c-{tenant}").id)
        assert (record.status, record.attempts) == ("succeeded", 1)


def test_athena_connections_share_the_scan_each_with_its_own_catalog(
    tmp_path: Path, source: str, aws: Any, one_scan: None
) -> None:
    """Each member of a fan-out keeps its Glue table in its own account's catalog, its
    columns there before its files, its latest-version view on its own snapshot."""
    config = write_config(tmp_path / "byob.toml", source, [MODEL])
    app = make_services(tmp_path, config, aws)
    customers = {}
    for index, tenant in enumerate(("acme", "globex")):
        _, customers[tenant], _ = onboard_athena(
            app,
            aws,
            name=f"{tenant}-athena",
            tenant=tenant,
            bucket=f"lake-{tenant}",
            account=f"11112222333{index}",
        )

    outcome = app.transfers.run_all()

    assert outcome.failures == [] and len(outcome.results) == 2
    for tenant, customer in customers.items():
        glue = customer.client("glue")
        table = glue.get_table(DatabaseName="billing", Name="events")["Table"]
        assert table["StorageDescriptor"]["Location"] == f"s3://lake-{tenant}/billing/events/"
        delivered = delivered_s3_ids(aws, customer, f"s3://lake-{tenant}/billing/events")
        assert delivered == expected_ids(source, tenant)
