"""Failures against real PostgreSQL and the moto server: a transient S3 error is retried with
backoff and delivers every row once; AccessDenied marks the connection failing (no retries,
no scheduling) until a passing validation clears it; a cancelled transfer's window is
delivered by the next one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from byob.demo.emulator import CustomerAccount, LocalAws
from byob.demo.readback import connect_s3
from byob.domain.fixes import recipient_fix
from byob.errors import DestinationError
from byob.services import Services
from byob.services.transfers import TransfersHeld
from byob.workers.local import LocalWorkers
from byob.workers.scheduler import Scheduler
from tests.integration.scheduling.helpers import (
    MODEL,
    FakeClock,
    acme_ids,
    at,
    create_invoices,
    run_local,
)
from tests.support import (
    RecordedEvents,
    activate,
    before_s3_call,
    create,
    make_services,
    onboard_s3,
    pg_insert,
    validate,
    write_config,
)

pytestmark = pytest.mark.integration

BYOB = [sys.executable, "-m", "byob.cli"]


# -- helpers -----------------------------------------------------------------------------------


class FailFirst:
    """A botocore hook on byob's S3 clients: the first ``times`` calls of ``operation`` raise
    the given AWS error before anything is sent."""

    def __init__(
        self, code: str, *, operation: str = "PutObject", times: int = 1, status: int = 503
    ) -> None:
        self.code, self.operation, self.times, self.status = code, operation, times, status
        self.fired = 0
        self._lock = threading.Lock()

    def __call__(self, **_: Any) -> None:
        with self._lock:
            if self.fired >= self.times:
                return
            self.fired += 1
        raise ClientError(
            {
                "Error": {"Code": self.code, "Message": "injected by the test"},
                "ResponseMetadata": {"HTTPStatusCode": self.status},
            },
            self.operation,
        )

    def install(self, app: Services) -> None:
        before_s3_call(app, self.operation, self)


def delivered_ids(aws: LocalAws, customer: CustomerAccount) -> list[int]:
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    rows = con.execute(
        "SELECT id FROM read_parquet('s3://bkt/exports/invoices/*/*.parquet')"
    ).fetchall()
    return sorted(r[0] for r in rows)


def manifests(customer: CustomerAccount) -> list[str]:
    return [o["Key"] for o in customer.keys("bkt", "exports/_manifests/invoices/")]


@pytest.fixture
def app(tmp_path: Path, pg_url: str, aws: LocalAws) -> Any:
    create_invoices(pg_url)
    byob = make_services(tmp_path, write_config(tmp_path / "byob.toml", pg_url, [MODEL]), aws)
    yield byob
    byob.adapters.close()


# -- (a) a transient failure is retried ----------------------------------------------------------


def test_a_slowdown_is_retried_with_backoff_and_delivers_every_row_once(
    app: Services, aws: LocalAws
) -> None:
    conn, customer = onboard_s3(app, aws)
    slowdown = FailFirst("SlowDown")
    slowdown.install(app)
    events = RecordedEvents()
    app.adapters.events = events
    sleeps: list[float] = []

    run_local(app, conn.name, sleeps=sleeps)

    assert slowdown.fired == 1
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 2.0  # backoff(1): full jitter under base 2 s
    [record] = app.adapters.state.transfers.history(conn.id)
    assert (record.status, record.attempts, record.rows, record.error) == (
        "succeeded",
        2,
        len(acme_ids()),
        None,
    )
    assert delivered_ids(aws, customer) == acme_ids()
    assert len(manifests(customer)) == 1
    assert app.connections.get(conn.id).failing_check is None
    assert events.names() == ["transfer.succeeded"]  # a retried failure is not reported


def test_a_transient_failure_on_every_attempt_gives_up_after_max_attempts(
    app: Services, aws: LocalAws
) -> None:
    conn, customer = onboard_s3(app, aws)
    FailFirst("SlowDown", times=100).install(app)
    events = RecordedEvents()
    app.adapters.events = events
    sleeps: list[float] = []
    workers = LocalWorkers(app, sleep=sleeps.append, max_attempts=3)
    app.transfers.dispatcher = workers
    try:
        app.transfers.trigger(conn.name, actor="cli")
        for future in list(workers.futures):
            future.result(timeout=180)
    finally:
        workers.shutdown()

    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 2.0 and 0 <= sleeps[1] <= 4.0
    [record] = app.adapters.state.transfers.history(conn.id)
    assert (record.status, record.attempts) == ("failed", 3)
    assert "SlowDown" in (record.error or "")
    assert events.names() == ["transfer.failed"]
    assert events.items[0][1]["verdict"] == "retry"
    assert (
        app.connections.get(conn.id).failing_check is None
    )  # transient: not the recipient's to fix
    assert customer.keys("bkt", "exports/invoices/") == []


# -- (b) AccessDenied marks the connection failing -----------------------------------------------


def test_access_denied_marks_the_connection_failing_until_it_validates_again(
    tmp_path: Path, pg_url: str, aws: LocalAws
) -> None:
    create_invoices(pg_url)
    keys = aws.create_service_user()  # with IAM enforcement on, moto refuses its dummy keys
    app = make_services(
        tmp_path,
        write_config(tmp_path / "byob.toml", pg_url, [MODEL]),
        aws,
        service_session=boto3.Session(
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ),
    )
    conn, customer = onboard_s3(app, aws)
    granted = app.connections.policies(conn)["permissions_policy"]
    iam = customer.client("iam")
    # The recipient replaces the permissions policy with one lacking s3:PutObject.
    iam.put_role_policy(
        RoleName=conn.role_name,
        PolicyName="byob-transfer",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:DeleteObject"],
                        "Resource": "arn:aws:s3:::bkt/exports/*",
                    }
                ],
            }
        ),
    )
    events = RecordedEvents()
    app.adapters.events = events
    sleeps: list[float] = []
    try:
        aws.enforce_iam(True)
        run_local(app, conn.name, sleeps=sleeps)

        failing = app.connections.get(conn.id)
        assert failing.failing_check == "transfer"
        message = failing.failing_message or ""
        assert "AccessDenied" in message and "s3:PutObject" in message, message
        assert conn.role_name in message, message
        assert failing.failing_since is not None
        assert sleeps == []  # no retry: a retry cannot fix a permission
        [record] = app.adapters.state.transfers.history(conn.id)
        assert record.status == "failed" and record.attempts == 1
        assert events.names() == ["transfer.failed", "connection.failing"]
        assert events.items[0][1]["verdict"] == "connection_failing"
        assert events.items[1][1] == {
            "connection": conn.name,
            "connection_id": conn.id,
            "tenant": "acme",
            "check": "transfer",
            "message": message,
            "fix": recipient_fix("transfer"),
        }

        # The scheduler skips it, whatever slot comes.
        clock = FakeClock(at("2026-11-22T00:00:00"))
        dispatched: list[str] = []
        scheduler = Scheduler(app, lambda c: dispatched.append(c.name), clock=clock)
        for when in ("2026-11-22T00:00:00", "2026-11-23T00:00:00"):
            clock.set(when)
            assert scheduler.tick() == []
        assert dispatched == []

        # Validation fails while the policy is broken, and failing stays set.
        still, checks = validate(app, conn.name)
        write = {c.name: c for c in checks}["write_test_object"]
        assert write.outcome.value == "failed" and write.aws_code == "AccessDenied"
        assert still.failing_check == "transfer"

        # The recipient restores the policy; a passing validation clears failing.
        aws.enforce_iam(False)
        iam.put_role_policy(
            RoleName=conn.role_name, PolicyName="byob-transfer", PolicyDocument=json.dumps(granted)
        )
        aws.enforce_iam(True)
        cleared, checks = validate(app, conn.name)
        assert all(c.outcome.value in ("passed", "warning") for c in checks), [
            c.as_dict() for c in checks
        ]
        assert (cleared.failing_check, cleared.failing_message, cleared.failing_since) == (
            None,
            None,
            None,
        )
        assert cleared.status.value == "active"
        clock.set("2026-11-24T00:00:00")
        assert scheduler.tick() == [conn.name]

        run_local(app, conn.name, sleeps=sleeps)
        assert sleeps == []
        records = app.adapters.state.transfers.history(conn.id)
        assert {r.status for r in records} == {"succeeded"}
        assert sum(r.rows for r in records) == len(acme_ids())
    finally:
        aws.enforce_iam(False)
    assert delivered_ids(aws, customer) == acme_ids()


def test_an_on_demand_trigger_does_not_run_a_failing_connection(
    tmp_path: Path, pg_url: str
) -> None:
    create_invoices(pg_url)
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", pg_url, [MODEL]))
    try:
        create(app, name="c1", tenant="acme", type="local", path=str(tmp_path / "out"))
        validate(app, "c1")
        activate(app, "c1")
        app.connections.mark_failing(
            app.connections.get("c1"), check="transfer", message="AccessDenied on PutObject"
        )
        workers = LocalWorkers(app, sleep=lambda _: None)
        try:
            app.transfers.dispatcher = workers
            try:
                triggered = app.transfers.trigger("c1", actor="cli")
            except TransfersHeld:  # refused, naming the failure
                triggered = None
            for future in list(workers.futures):
                future.result(timeout=60)
        finally:
            workers.shutdown()
        assert triggered is None or triggered.planned == []
        assert app.adapters.state.transfers.history(app.connections.get("c1").id) == []
    finally:
        app.adapters.close()


# -- (c) cancellation ------------------------------------------------------------------------------


def _plan(app: Services, name: str) -> Any:
    """Fix the next window of the model without running it (what a trigger does first)."""
    with app.adapters.source() as src:
        _, records = app.adapters.runner(app.connections.get(name), src).prepare(
            app.adapters.models_file.model("invoices")
        )
    return records[-1]


def _more_rows(url: str, ids: range) -> None:
    pg_insert(
        url,
        "INSERT INTO invoices VALUES (%s, %s, %s, now())",
        [(i, "acme" if i % 3 else "globex", "1.00") for i in ids],
    )


def _expected(*ranges: range) -> list[int]:
    return sorted(i for r in ranges for i in r if i % 3)


def test_a_cancelled_planned_transfer_is_covered_by_the_next_run(
    app: Services, aws: LocalAws, pg_url: str
) -> None:
    conn, customer = onboard_s3(app, aws)
    [first] = app.transfers.run(conn.name)
    assert first.record.rows == len(acme_ids())
    _more_rows(pg_url, range(100, 110))
    planned = _plan(app, conn.name)
    assert (planned.status, planned.attempts) == ("planned", 0)

    cancelled = app.transfers.cancel(planned.id, actor="cli")
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert app.adapters.state.transfers.pending(conn.id, "invoices") == []
    _more_rows(pg_url, range(200, 210))

    [second] = app.transfers.run(conn.name)
    assert second.record.id != planned.id
    assert second.record.window.low == first.record.window.high  # from the last delivered mark
    assert second.record.rows == len(_expected(range(100, 110), range(200, 210)))
    assert delivered_ids(aws, customer) == sorted(
        acme_ids() + _expected(range(100, 110), range(200, 210))
    )
    statuses = sorted(r.status for r in app.adapters.state.transfers.history(conn.id))
    assert statuses == ["cancelled", "succeeded", "succeeded"]
    assert app.adapters.state.transfers.counts_by_status() == {"cancelled": 1, "succeeded": 2}


def test_a_cancelled_failed_transfer_is_covered_by_the_next_run(
    app: Services, aws: LocalAws, pg_url: str
) -> None:
    conn, customer = onboard_s3(app, aws)
    [first] = app.transfers.run(conn.name)
    _more_rows(pg_url, range(100, 110))
    FailFirst("SlowDown").install(app)
    with pytest.raises(DestinationError, match="SlowDown"):
        app.transfers.run(conn.name)
    [failed] = [r for r in app.adapters.state.transfers.history(conn.id) if r.status == "failed"]
    assert failed.attempts == 1

    requested = app.transfers.cancel(failed.id, actor="cli")
    assert requested.cancel_requested  # not queued: cancelled when it next runs
    # Asked again: nothing changes, and the audit log tells the cancel once.
    again = app.transfers.request_cancel(failed.id, actor="cli")
    assert again.already and again.record.cancel_requested
    cancels = [
        e for e in app.adapters.state.audit.recent(limit=100) if e["action"] == "transfer.cancel"
    ]
    assert len(cancels) == 1, cancels

    app.transfers.run(conn.name)
    assert app.transfers.get(failed.id).status == "cancelled"
    assert delivered_ids(aws, customer) == sorted(acme_ids() + _expected(range(100, 110)))
    assert first.record.rows == len(acme_ids())


def test_byob_transfers_cancel_cancels_a_planned_transfer(
    tmp_path: Path, app: Services, aws: LocalAws
) -> None:
    conn, _ = onboard_s3(app, aws)
    planned = _plan(app, conn.name)
    env = dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(tmp_path / "byob.toml"),
        "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        "BYOB_SETTLE_LAG_SECONDS": "0",
    }
    done = subprocess.run(
        [*BYOB, "transfers", "cancel", planned.id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "cancelled"
    assert app.transfers.get(planned.id).status == "cancelled"
