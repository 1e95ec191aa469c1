"""Import connections end to end through the use cases, on real components: the customer's
bucket and role on the moto server with IAM enforcement on, the vendor's PostgreSQL table.
The generated policy lets the role list and read and nothing else; validation lists the base
path, reads a file and proves the role cannot write; runs load each file once, remember a
rejected one until it is retried, and a withdrawn permission marks the connection failing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.container import Byob
from byob.demo.emulator import CustomerAccount, LocalAws
from byob.errors import ByobError, InvalidFieldError
from byob.services import Services
from byob.settings import load_settings
from byob.workers.local import LocalWorkers
from tests.integration.test_aws_errors import customer_admin, vendor_session
from tests.support import OPEN_APPS, RecordedEvents, pg_exec

pytestmark = pytest.mark.integration

CUSTOMER = "210987654321"
BUCKET = "acme-usage"
HEADER = b"account,quantity\n"


def models_file(path: Path, url: str) -> Path:
    path.write_text(
        f"""[source]
url = "{url}"

[[models]]
name = "events"
table = "events"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = ["id"]

[[imports]]
name = "usage_events"
table = "usage_events"
tenant_column = "tenant_id"
format = "csv"
columns = {{ account = "text", quantity = "integer" }}
key_pattern = "**.csv"
"""
    )
    return path


@pytest.fixture
def app(tmp_path: Path, pg_url: str, aws: LocalAws) -> tuple[Services, RecordedEvents]:
    pg_exec(
        pg_url,
        "CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text, updated_at timestamptz)",
        "CREATE TABLE usage_events (tenant_id text NOT NULL, account text, quantity integer)",
    )
    return import_services(tmp_path, pg_url, aws)


def import_services(tmp_path: Path, pg_url: str, aws: LocalAws) -> tuple[Services, RecordedEvents]:
    """byob over the tables already made, with the vendor's identity on the moto server, its
    events recorded and the import ledger created."""
    recorded = RecordedEvents()
    byob = Byob(
        load_settings(
            home=tmp_path / ".byob",
            config=models_file(tmp_path / "byob.toml", pg_url),
            aws_endpoint_url=aws.endpoint_url,
        ),
        aws=AwsSessions(
            AwsConfig(endpoint_url=aws.endpoint_url, max_attempts=2), vendor_session(aws)
        ),
        events=recorded,
    )
    byob.migrate()
    OPEN_APPS.append(byob)
    services = Services(byob)
    services.models.create_import_ledger()
    return services, recorded


def onboard(
    services: Services, aws: LocalAws, *, permissions: dict[str, Any] | None = None
) -> tuple[Any, CustomerAccount, dict[str, Any]]:
    """The recipient creates the bucket and the role byob asks for (or the policy given)."""
    customer = customer_admin(aws)
    customer.create_bucket(BUCKET)
    created = services.connections.create(
        actor="cli",
        name="usage",
        tenant="acme",
        type="s3",
        direction="import",
        import_name="usage_events",
        account_id=CUSTOMER,
        bucket=BUCKET,
        region="us-east-1",
        base_path="drop",
    )
    policies = created.policies
    customer.create_role(
        policies["role_name"],
        policies["trust_policy"],
        permissions or policies["permissions_policy"],
    )
    return created.connection, customer, policies


def checks_of(services: Services, aws: LocalAws, name: str) -> dict[str, Any]:
    aws.enforce_iam(True)
    try:
        done = services.connections.validate(name, actor="cli")
    finally:
        aws.enforce_iam(False)
    return {r.name: r for r in done.results}


def rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT tenant_id, account, quantity FROM usage_events ORDER BY account"
        ).fetchall()


def put(customer: CustomerAccount, key: str, body: bytes) -> None:
    customer.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


def test_the_policy_grants_list_and_get_under_the_base_path_and_nothing_else(
    app: tuple[Services, RecordedEvents], aws: LocalAws
) -> None:
    services, _ = app
    conn, _, policies = onboard(services, aws)
    assert conn.is_import and conn.import_name == "usage_events"
    statements = policies["permissions_policy"]["Statement"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}"),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/drop/*"),
    ]
    assert statements[0]["Condition"] == {"StringLike": {"s3:prefix": ["drop/", "drop/*"]}}
    assert policies["trust_policy"]["Statement"][0]["Condition"] == {
        "StringEquals": {"sts:ExternalId": conn.external_id}
    }
    view = services.connections.view(conn)
    assert (view["direction"], view["import"]) == ("import", "usage_events")


def test_validation_lists_reads_and_proves_the_role_cannot_write_then_runs_load_once(
    app: tuple[Services, RecordedEvents], aws: LocalAws, pg_url: str
) -> None:
    services, recorded = app
    conn, customer, _ = onboard(services, aws)
    put(customer, "drop/2026/12/01.csv", HEADER + b"a,1\nb,2\n")
    put(customer, "drop/2026/12/02.csv", HEADER + b"c,3\n")
    put(customer, "drop/readme.txt", b"not a file of the import")

    checks = checks_of(services, aws, conn.name)

    # The emulator does not evaluate trust policies: that one check can only warn here.
    outcomes = {n: c.outcome.value for n, c in checks.items() if n != "external_id_required"}
    assert set(outcomes.values()) == {"passed"}, {n: c.message for n, c in checks.items()}
    assert list(checks) == [
        "assume_role",
        "external_id_required",
        "bucket_region",
        "list_base_path",
        "read_object",
        "write_refused",
    ]
    assert "3 objects, 2 of them files of import 'usage_events'" in checks["list_base_path"].message
    assert "the newest is drop/2026/12/0" in checks["list_base_path"].message
    assert "PutObject was refused" in checks["write_refused"].message
    keys = [o["Key"] for o in customer.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [k for k in keys if "probe" in k]  # nothing was written

    services.connections.activate(conn.name, actor="cli")
    aws.enforce_iam(True)
    try:
        first = services.transfers.run(conn.name)
        second = services.transfers.run(conn.name)
    finally:
        aws.enforce_iam(False)

    assert rows(pg_url) == [("acme", "a", 1), ("acme", "b", 2), ("acme", "c", 3)]
    record = first[0].record
    assert (record.type.value, record.status.value, record.rows, record.files) == (
        "import",
        "succeeded",
        3,
        2,
    )
    assert record.import_counts == {
        "seen": 2,
        "imported": 2,
        "rejected": 0,
        "skipped": 0,
        "already": 0,
    }
    assert record.note == "2 files seen: 2 imported (3 rows)"
    assert second[0].record.import_counts == {
        "seen": 2,
        "imported": 0,
        "rejected": 0,
        "skipped": 0,
        "already": 0,
    }
    assert recorded.names().count("import.succeeded") == 2
    _, page = services.transfers.history(conn.name)
    assert [t.type.value for t in page.items] == ["import", "import"]


def test_a_policy_without_list_bucket_fails_validation_with_the_fix(
    app: tuple[Services, RecordedEvents], aws: LocalAws
) -> None:
    services, _ = app
    only_get = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/drop/*",
            }
        ],
    }
    conn, _, _ = onboard(services, aws, permissions=only_get)

    checks = checks_of(services, aws, conn.name)

    listing = checks["list_base_path"]
    assert listing.outcome.value == "failed"
    assert listing.aws_code == "AccessDenied"
    assert f"must allow s3:ListBucket on arn:aws:s3:::{BUCKET}" in listing.message
    assert checks["read_object"].outcome.value == "skipped"
    with pytest.raises(ByobError, match="no passing validation"):
        services.connections.activate(conn.name, actor="cli")


def test_a_role_that_may_write_passes_with_a_warning_and_leaves_nothing_behind(
    app: tuple[Services, RecordedEvents], aws: LocalAws
) -> None:
    services, _ = app
    broad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    conn, customer, _ = onboard(services, aws, permissions=broad)

    checks = checks_of(services, aws, conn.name)

    assert checks["write_refused"].outcome.value == "warning"
    assert "broader than needed" in checks["write_refused"].message
    assert "Contents" not in customer.client("s3").list_objects_v2(Bucket=BUCKET)
    services.connections.activate(conn.name, actor="cli")  # a warning does not block


def test_a_rejected_file_waits_for_a_retry_and_the_good_ones_go_on(
    app: tuple[Services, RecordedEvents], aws: LocalAws, pg_url: str
) -> None:
    services, recorded = app
    conn, customer, _ = onboard(services, aws)
    checks_of(services, aws, conn.name)
    services.connections.activate(conn.name, actor="cli")
    put(customer, "drop/a.csv", HEADER + b"a,1\n")
    put(customer, "drop/b.csv", HEADER + b"b,two\n")
    put(customer, "drop/c.csv", HEADER + b"c,3\n")

    first = services.transfers.run(conn.name)[0].record
    again = services.transfers.run(conn.name)[0].record

    assert rows(pg_url) == [("acme", "a", 1), ("acme", "c", 3)]
    assert first.import_counts is not None and first.import_counts["rejected"] == 1
    assert again.import_counts == {
        "seen": 3,
        "imported": 0,
        "rejected": 0,
        "skipped": 1,
        "already": 0,
    }
    assert "1 rejected before, waiting for a retry" in (again.note or "")
    rejected = services.imports.rejected(conn.name)
    assert rejected.total == 1
    (only,) = rejected.items
    assert only.key == "drop/b.csv" and only.transfer_id == first.id
    assert only.problems[0].line == 2 and only.problems[0].column == "quantity"
    told = [p for n, p in recorded.items if n == "import.file_rejected"]
    assert [(p["key"], p["transfer_id"]) for p in told] == [("drop/b.csv", first.id)]
    assert "line 2" in told[0]["message"]

    put(customer, "drop/b.csv", HEADER + b"b,2\n")  # fixed: a new ETag is a new file
    services.transfers.run(conn.name)
    assert rows(pg_url) == [("acme", "a", 1), ("acme", "b", 2), ("acme", "c", 3)]

    put(customer, "drop/d.csv", HEADER + b"d,four\n")
    services.transfers.run(conn.name)
    assert services.imports.retry(conn.name, "drop/d.csv", actor="cli") == 1
    put_back = services.transfers.run(conn.name)[0].record
    assert put_back.import_counts is not None and put_back.import_counts["rejected"] == 1
    figures = services.figures.now()
    assert (figures.rows_imported, figures.import_files_rejected) == (3, 1)
    assert figures.rows_delivered == 0  # imports are not deliveries
    with pytest.raises(ByobError, match=r"no rejected file 'drop/nope\.csv'"):
        services.imports.retry(conn.name, "drop/nope.csv", actor="cli")


def test_a_withdrawn_permission_marks_the_connection_failing_and_says_so(
    app: tuple[Services, RecordedEvents], aws: LocalAws
) -> None:
    services, recorded = app
    conn, customer, policies = onboard(services, aws)
    checks_of(services, aws, conn.name)
    services.connections.activate(conn.name, actor="cli")
    iam = customer.client("iam")
    for name in iam.list_role_policies(RoleName=policies["role_name"])["PolicyNames"]:
        iam.delete_role_policy(RoleName=policies["role_name"], PolicyName=name)

    aws.enforce_iam(True)
    try:
        with pytest.raises(ByobError, match="s3:ListBucket"):
            services.transfers.run(conn.name)
    finally:
        aws.enforce_iam(False)

    after = services.connections.get(conn.name)
    assert after.is_failing
    failed = [p for n, p in recorded.items if n == "import.failed"]
    assert failed and failed[0]["transfer"]["status"] == "failed"
    assert failed[0]["retrying"] is False


def test_an_import_connection_is_s3_and_names_a_declared_import(
    app: tuple[Services, RecordedEvents],
) -> None:
    services, _ = app
    common: dict[str, Any] = {
        "actor": "cli",
        "name": "x",
        "tenant": "acme",
        "account_id": CUSTOMER,
        "bucket": BUCKET,
        "region": "us-east-1",
        "direction": "import",
    }
    with pytest.raises(InvalidFieldError, match="import is required") as missing:
        services.connections.create(type="s3", **common)
    assert missing.value.field == "import"
    with pytest.raises(ByobError, match=r"no import named 'nope'.*usage_events") as unknown:
        services.connections.create(type="s3", import_name="nope", **common)
    assert unknown.value.field == "import"
    with pytest.raises(InvalidFieldError, match="its type is s3, not athena"):
        services.connections.create(
            type="athena", import_name="usage_events", schema="s", database="d", **common
        )
    with pytest.raises(InvalidFieldError, match="direction 'sideways'"):
        services.connections.create(
            type="s3", import_name="usage_events", **(common | {"direction": "sideways"})
        )
    assert services.connections.all() == []


def test_scheduled_and_triggered_runs_take_the_workers_path_with_one_record_each(
    app: tuple[Services, RecordedEvents], aws: LocalAws, pg_url: str
) -> None:
    """The scheduler's dispatch and the pages' run-now go through the embedded workers like
    an export's: the planned record is the one that runs (a re-queued stranded one too)."""
    services, _ = app
    conn, customer, _ = onboard(services, aws)
    checks_of(services, aws, conn.name)
    conn = services.connections.activate(conn.name, actor="cli")
    put(customer, "drop/a.csv", HEADER + b"a,1\n")
    workers = LocalWorkers(services)
    services.transfers.dispatcher = workers
    try:
        scheduled = services.transfers.dispatch_scheduled(conn)
        for future in list(workers.futures):
            future.result(timeout=120)
        put(customer, "drop/b.csv", HEADER + b"b,2\n")
        triggered = services.transfers.trigger(conn.name, actor="cli")
        for future in list(workers.futures):
            future.result(timeout=120)
    finally:
        workers.shutdown()
        services.transfers.dispatcher = None

    assert rows(pg_url) == [("acme", "a", 1), ("acme", "b", 2)]
    planned = [r.id for r in scheduled.planned + triggered.planned]
    _, page = services.transfers.history(conn.name)
    assert sorted(t.id for t in page.items) == sorted(planned)
    assert {t.status.value for t in page.items} == {"succeeded"}
    assert [t.files for t in page.items] == [1, 1]
