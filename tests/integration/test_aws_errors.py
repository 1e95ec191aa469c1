"""AWS refusing byob, with the emulator's IAM enforcement on: a policy for the wrong prefix, a
policy withdrawn in the middle of a multipart upload, a missing bucket, a wrong region, HMAC
keys good and bad. Each failure must be reported in words a recipient can act on, leave
nothing half-visible in the bucket and nothing committed in the state store.

With enforcement on, moto accepts only credentials it issued: byob's own principal is an IAM
user of the vendor account here (moto refuses the default "testing" key), and the customer's
administrator acts through a role that holds an administrator policy.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import psycopg
import pytest
from botocore.awsrequest import AWSResponse

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.container import Byob
from byob.demo.emulator import CustomerAccount, LocalAws
from byob.demo.readback import connect_s3
from byob.errors import ConflictError, DestinationError, TransferError
from byob.services import Services
from byob.services.transfers import TransfersHeld
from byob.settings import load_settings
from tests.support import (
    CUSTOMER,
    OPEN_APPS,
    activate,
    before_s3_call,
    create,
    pg_exec,
    validate,
    write_config,
)

pytestmark = pytest.mark.integration

MODEL = {
    "name": "events",
    "table": "events",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
ADMIN_ROLE = "OrganizationAccountAccessRole"  # the role LocalAws.customer() acts through


# -- helpers -----------------------------------------------------------------------------------


def vendor_session(aws: LocalAws) -> boto3.Session:
    """byob's own principal as an IAM user of the vendor account, which moto accepts when it
    enforces IAM. It may only assume roles and tell who it is."""
    iam = aws.service_session().client("iam", endpoint_url=aws.endpoint_url)
    iam.create_user(UserName="byob-service")
    iam.put_user_policy(
        UserName="byob-service",
        PolicyName="assume-customer-roles",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:GetCallerIdentity"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="byob-service")["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name="us-east-1",
    )


def enforcing_app(tmp_path: Path, url: str, aws: LocalAws, **settings: Any) -> Services:
    """Like tests.support.make_services, but byob runs as an IAM user moto knows."""
    options: dict[str, Any] = {
        "home": tmp_path / ".byob",
        "config": write_config(tmp_path / "byob.toml", url, [MODEL]),
        "settle_lag_seconds": 0,
        "aws_endpoint_url": aws.endpoint_url,
        **settings,
    }
    sessions = AwsSessions(
        AwsConfig(endpoint_url=aws.endpoint_url, max_attempts=2), vendor_session(aws)
    )
    byob = Byob(load_settings(**options), aws=sessions)
    byob.migrate()
    OPEN_APPS.append(byob)
    return Services(byob)


def customer_admin(aws: LocalAws, region: str = "us-east-1") -> CustomerAccount:
    """The recipient's administrator, still allowed everything once enforcement is on."""
    customer = aws.customer(CUSTOMER, region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            }
        ],
    }
    customer.create_role(ADMIN_ROLE, trust, ADMIN_POLICY)
    return customer


def new_connection(
    app: Services,
    customer: CustomerAccount,
    *,
    bucket: str = "bkt",
    region: str = "us-east-1",
    create_bucket: bool = True,
    permissions: dict[str, Any] | None = None,
    name: str = "c1",
) -> Any:
    """The recipient creates the bucket and the role byob asks for (or the given policy)."""
    if create_bucket:
        customer.create_bucket(bucket)
    conn = create(
        app,
        name=name,
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket=bucket,
        region=region,
        base_path="exports",
    )
    policies = app.connections.policies(conn)
    customer.create_role(
        policies["role_name"],
        policies["trust_policy"],
        permissions or policies["permissions_policy"],
    )
    return conn


def checks_by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def all_passed(checks: list[Any]) -> bool:
    """Validation passed: no check failed or was skipped. Warnings are allowed: moto does not
    evaluate trust policies, so the external-ID check can only warn against it."""
    return all(c.outcome.value in ("passed", "warning") for c in checks)


def first_failure(checks: list[Any]) -> Any:
    failed = [c for c in checks if c.outcome.value == "failed"]
    assert failed, [c.as_dict() for c in checks]
    return failed[0]


def s3_policy(bucket: str, prefix: str, actions: list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*"}
        ],
    }


def duckdb_ids(aws: LocalAws, customer: CustomerAccount, bucket: str = "bkt") -> list[int]:
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    rows = con.execute(
        f"SELECT id FROM read_parquet('s3://{bucket}/exports/events/*/*.parquet')"
    ).fetchall()
    return [r[0] for r in rows]


def source_ids(url: str) -> list[int]:
    with psycopg.connect(url) as db:
        return [r[0] for r in db.execute("SELECT id FROM events WHERE tenant_id = 'acme'")]


@pytest.fixture
def events(pg_url: str) -> str:
    pg_exec(
        pg_url,
        "CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text NOT NULL, payload text, "
        "updated_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO events (id, tenant_id, payload) "
        "SELECT i, CASE WHEN i % 5 = 0 THEN 'globex' ELSE 'acme' END, md5(i::text) "
        "FROM generate_series(1, 50) i",
    )
    return pg_url


# -- (a) a permissions policy for another prefix -----------------------------------------------


def test_policy_for_another_prefix_fails_the_write_check_and_names_the_fix(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws)
    conn = new_connection(
        app, customer, permissions=s3_policy("bkt", "elsewhere", ["s3:PutObject"])
    )
    aws.enforce_iam(True)

    _, checks = validate(app, conn.name)
    by_name = checks_by_name(checks)
    assert by_name["assume_role"].outcome.value == "passed", by_name["assume_role"].message
    write = by_name["write_test_object"]
    assert write.outcome.value == "failed" and write.aws_code == "AccessDenied"
    assert "s3:PutObject" in write.message, write.message
    assert re.search(r"s3://bkt/exports/_byob_connection_test/\w+\.txt", write.message), (
        write.message
    )
    assert conn.role_name in write.message, write.message
    assert by_name["delete_test_object"].outcome.value == "skipped"
    with pytest.raises(ConflictError):
        activate(app, conn.name)
    assert customer.keys("bkt") == []

    # The recipient pastes the policy byob showed; revalidation passes and activation works.
    customer.client("iam").put_role_policy(
        RoleName=conn.role_name,
        PolicyName="byob-transfer",
        PolicyDocument=json.dumps(app.connections.policies(conn)["permissions_policy"]),
    )
    _, checks = validate(app, conn.name)
    assert all_passed(checks), [c.as_dict() for c in checks]
    assert activate(app, conn.name).status.value == "active"
    assert customer.keys("bkt") == []  # the test object was deleted


# -- (b) AWS refuses a part in the middle of a multipart upload --------------------------------


class RevokeOnPart:
    """A botocore hook on byob's S3 client: when the n-th UploadPart is about to be sent, the
    recipient's administrator replaces the role's policy. The request then really reaches the
    emulator, which refuses it: a genuine AWS error at a deterministic point."""

    def __init__(self, revoke: Any, nth: int = 2) -> None:
        self.revoke, self.nth = revoke, nth
        self.parts = 0
        self.fired = False
        self._lock = threading.Lock()

    def __call__(self, **_: Any) -> None:
        with self._lock:
            self.parts += 1
            if self.parts == self.nth and not self.fired:
                self.fired = True
                self.revoke()

    def install(self, app: Services) -> None:
        before_s3_call(app, "UploadPart", self)


def _multipart_setup(
    tmp_path: Path, events: str, aws: LocalAws
) -> tuple[Byob, Any, CustomerAccount, Any]:
    app = enforcing_app(
        tmp_path, events, aws, multipart_part_bytes=5 << 20, row_group_bytes=2 << 20
    )
    customer = customer_admin(aws)
    conn = new_connection(app, customer)
    aws.enforce_iam(True)
    _, checks = validate(app, conn.name)
    assert all_passed(checks), [c.as_dict() for c in checks]
    activate(app, conn.name)
    [first] = app.transfers.run(conn.name)
    assert first.record.rows == 40
    # About 20 MB of Parquet (hex digests barely compress): four 5 MiB parts in one file.
    pg_exec(
        events,
        "INSERT INTO events (id, tenant_id, payload) SELECT i, 'acme', "
        "md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) "
        "FROM generate_series(1000, 200999) i",
    )
    return app, conn, customer, first


@pytest.mark.parametrize(
    "withdrawn",
    [
        pytest.param("put", id="PutObject-withdrawn"),
        pytest.param("all", id="whole-policy-withdrawn"),
    ],
)
def test_error_mid_multipart_leaves_nothing_and_the_rerun_delivers_exactly_once(
    tmp_path: Path, events: str, aws: LocalAws, withdrawn: str
) -> None:
    app, conn, customer, first = _multipart_setup(tmp_path, events, aws)
    iam = customer.client("iam")
    data_before = {o["Key"] for o in customer.keys("bkt", "exports/events/")}
    manifests_before = {o["Key"] for o in customer.keys("bkt", "exports/_manifests/")}
    state_before = app.adapters.state.transfers.model_state(conn.id, "events")

    def revoke() -> None:
        if withdrawn == "put":  # the recipient keeps only the abort and delete permissions
            policy = s3_policy("bkt", "exports", ["s3:DeleteObject", "s3:AbortMultipartUpload"])
            iam.put_role_policy(
                RoleName=conn.role_name,
                PolicyName="byob-transfer",
                PolicyDocument=json.dumps(policy),
            )
        else:
            iam.delete_role_policy(RoleName=conn.role_name, PolicyName="byob-transfer")

    hook = RevokeOnPart(revoke)
    hook.install(app)
    with pytest.raises((TransferError, DestinationError)) as caught:
        app.transfers.run(conn.name)
    assert hook.fired
    message = caught.value.message
    assert "AccessDenied" in message and "PutObject" in message, message
    assert re.search(r"s3://bkt/exports/events/dt=[\d-]+/1_\d{14}\.parquet", message), message

    assert {o["Key"] for o in customer.keys("bkt", "exports/events/")} == data_before
    assert {o["Key"] for o in customer.keys("bkt", "exports/_manifests/")} == manifests_before
    uploads = customer.client("s3").list_multipart_uploads(Bucket="bkt").get("Uploads", [])
    if withdrawn == "put":
        assert uploads == []  # byob aborted its incomplete upload
    else:
        assert len(uploads) <= 1  # the abort was refused too: the rerun must abort it
    assert app.adapters.state.transfers.model_state(conn.id, "events") == state_before
    assert _part_upload_threads() == []  # the aborted file's uploaders ended with it
    failed = app.adapters.state.transfers.history(conn.id)[0]
    assert failed.id != first.record.id
    assert failed.status == "failed" and "AccessDenied" in (failed.error or ""), failed

    # A permission error holds the connection's transfers, whoever ran it (here the CLI).
    held = app.connections.get(conn.id)
    assert held.failing_check == "transfer" and "AccessDenied" in (held.failing_message or "")
    with pytest.raises(TransfersHeld, match="is failing"):
        app.transfers.run(conn.name)

    # The recipient restores the policy and revalidates; the rerun finishes the same window
    # exactly once.
    iam.put_role_policy(
        RoleName=conn.role_name,
        PolicyName="byob-transfer",
        PolicyDocument=json.dumps(app.connections.policies(conn)["permissions_policy"]),
    )
    _, checks = validate(app, conn.name)
    assert all(c.outcome.value in ("passed", "warning") for c in checks), checks
    results = app.transfers.run(conn.name)
    assert results[0].resumed and results[0].record.id == failed.id
    assert results[0].record.status == "succeeded" and results[0].record.attempts == 2
    assert results[0].record.window == failed.window
    assert results[0].record.bytes > 10 << 20 and hook.parts >= 2  # a multipart file indeed
    assert customer.client("s3").list_multipart_uploads(Bucket="bkt").get("Uploads", []) == []
    assert _part_upload_threads() == []
    aws.enforce_iam(False)
    ids = duckdb_ids(aws, customer)
    assert len(ids) == len(set(ids)) == len(source_ids(events)) == 40 + 200_000
    assert set(ids) == set(source_ids(events))


def _part_upload_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("s3-part")]


# -- (c) a bucket that does not exist, a bucket in another region ------------------------------


def test_missing_bucket_fails_validation_and_says_to_create_it(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws)
    conn = new_connection(app, customer, bucket="no-such-bucket-1", create_bucket=False)
    aws.enforce_iam(True)
    _, checks = validate(app, conn.name)
    failure = first_failure(checks)
    assert failure.aws_code == "NoSuchBucket", failure
    assert "bucket no-such-bucket-1 does not exist" in failure.message, failure.message
    assert "create it" in failure.message and "fix the bucket name" in failure.message
    assert all(c.outcome.value == "skipped" for c in checks[checks.index(failure) + 1 :])
    with pytest.raises(ConflictError):
        activate(app, conn.name)


class HeadBucketLikeS3:
    """Real S3 answers HeadBucket from a caller without s3:ListBucket (byob's role has none)
    with 403 *and* the bucket's region in x-amz-bucket-region; moto's 403 has no such header.
    This hook, on every S3 client byob makes, answers HeadBucket as S3 does."""

    def __init__(self, regions: dict[str, str]) -> None:
        self.regions = regions
        self.answered: list[str] = []

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        bucket = urlparse(request.url).path.strip("/").split("/")[0]
        if bucket not in self.regions:
            return None
        self.answered.append(bucket)
        return AWSResponse(
            request.url, 403, {"x-amz-bucket-region": self.regions[bucket]}, _Raw(b"")
        )

    def install(self, app: Services) -> None:
        original = app.adapters.aws.client

        def client(session: Any, service: str, region: str | None = None, **cfg: Any) -> Any:
            made = original(session, service, region, **cfg)
            if service == "s3":
                made.meta.events.register("before-send.s3.HeadBucket", self)
            return made

        app.adapters.aws.client = client  # type: ignore[method-assign]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.body


@pytest.mark.parametrize("enforce", [False, True], ids=["moto-head-bucket", "s3-like-403"])
def test_wrong_region_fails_validation_and_names_the_real_region(
    tmp_path: Path, events: str, aws: LocalAws, enforce: bool
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws, region="eu-west-1")
    customer.create_bucket("eu-bkt")
    conn = new_connection(app, customer, bucket="eu-bkt", region="us-east-1", create_bucket=False)
    s3 = HeadBucketLikeS3({"eu-bkt": "eu-west-1"})
    if enforce:
        s3.install(app)
        aws.enforce_iam(True)
    _, checks = validate(app, conn.name)
    assert s3.answered or not enforce
    failure = first_failure(checks)
    assert "eu-west-1" in failure.message and "region" in failure.message, failure.message
    assert "us-east-1" in failure.message  # what is set now, and what to set instead
    with pytest.raises(ConflictError):
        activate(app, conn.name)
    assert customer.keys("eu-bkt") == []  # nothing was written to the misconfigured bucket


def test_right_region_passes_with_s3_like_head_bucket(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    """The control for the emulated HeadBucket answer: the bucket's real region passes."""
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws, region="eu-west-1")
    customer.create_bucket("eu-bkt")
    conn = new_connection(app, customer, bucket="eu-bkt", region="eu-west-1", create_bucket=False)
    s3 = HeadBucketLikeS3({"eu-bkt": "eu-west-1"})
    s3.install(app)
    aws.enforce_iam(True)
    _, checks = validate(app, conn.name)
    assert all_passed(checks), [c.as_dict() for c in checks]
    assert s3.answered == ["eu-bkt"]


# -- (d) HMAC access keys ----------------------------------------------------------------------


def _iam_user_key(customer: CustomerAccount) -> dict[str, str]:
    iam = customer.client("iam")
    iam.create_user(UserName="byob-writer")
    return iam.create_access_key(UserName="byob-writer")["AccessKey"]


def test_hmac_bad_secret_fails_and_good_key_transfers_and_no_secret_is_kept_in_clear(
    tmp_path: Path, events: str, aws: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="byob")
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws)
    customer.create_bucket("bkt")
    key = _iam_user_key(customer)
    good_secret = key["SecretAccessKey"]
    bad_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzBADKEY"
    fields = {
        "tenant": "acme",
        "type": "s3",
        "account_id": CUSTOMER,
        "bucket": "bkt",
        "region": "us-east-1",
        "base_path": "exports",
        "access_key_id": key["AccessKeyId"],
    }
    bad = create(app, name="bad", secret_access_key=bad_secret, **fields)
    good = create(app, name="good", secret_access_key=good_secret, **fields)
    customer.client("iam").put_user_policy(
        UserName="byob-writer",
        PolicyName="byob-transfer",
        PolicyDocument=json.dumps(app.connections.policies(good)["permissions_policy"]),
    )
    aws.enforce_iam(True)

    _, bad_checks = validate(app, bad.name)
    creds = checks_by_name(bad_checks)["credentials"]
    assert creds.outcome.value == "failed" and creds.aws_code == "SignatureDoesNotMatch", creds
    assert key["AccessKeyId"] in creds.message and "secret access key" in creds.message
    assert bad_checks[0] is creds
    assert {c.outcome.value for c in bad_checks[1:]} == {"skipped"}

    _, good_checks = validate(app, good.name)
    assert all_passed(good_checks), [c.as_dict() for c in good_checks]
    assert "user/byob-writer" in checks_by_name(good_checks)["credentials"].message
    activate(app, good.name)
    [result] = app.transfers.run(good.name)
    assert result.record.rows == 40
    aws.enforce_iam(False)
    assert sorted(duckdb_ids(aws, customer)) == sorted(source_ids(events))

    messages = [c.message for c in bad_checks + good_checks] + [
        r.getMessage() for r in caplog.records
    ]
    stored = b"".join(p.read_bytes() for p in (tmp_path / ".byob").glob("state.sqlite*"))
    for secret in (good_secret, bad_secret):
        assert not any(secret in m for m in messages)
        assert secret.encode() not in stored
        assert secret not in repr(app.connections.get("good")) + repr(app.connections.get("bad"))
    assert key["AccessKeyId"].encode() in stored  # the store was really read


def test_hmac_unknown_access_key_fails_the_credentials_check(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws)
    customer.create_bucket("bkt")
    conn = create(
        app,
        name="unknown",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="bkt",
        region="us-east-1",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    aws.enforce_iam(True)
    _, checks = validate(app, conn.name)
    creds = checks_by_name(checks)["credentials"]
    assert creds.outcome.value == "failed" and creds.aws_code == "InvalidClientTokenId", creds
    assert "AKIAIOSFODNN7EXAMPLE" in creds.message
