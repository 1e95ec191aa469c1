"""The validation failure paths the emulator can produce, with IAM enforcement on: a trust
policy without the external ID condition, a wrong external ID (same-account role, exact-ARN
principal: the one case where moto checks it), a policy without s3:DeleteObject before and
after the first activation, and Athena's workgroup and Glue permissions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from byob.demo.emulator import LocalAws
from byob.destinations.checks import CheckResult
from byob.services import Services
from tests.integration.test_aws_errors import (
    checks_by_name,
    customer_admin,
    enforcing_app,
    events,  # noqa: F401 - fixture
    new_connection,
    s3_policy,
)
from tests.support import activate, create, validate

pytestmark = pytest.mark.integration

VENDOR = "123456789012"  # moto's default account, where byob's own user lives


def _same_account_connection(app: Any, aws: LocalAws, *, trust: dict[str, Any]) -> Any:
    """A role in byob's own account whose trust policy names byob's user by exact ARN."""
    admin = aws.service_session()
    admin.client("s3", endpoint_url=aws.endpoint_url).create_bucket(Bucket="own")
    conn = create(
        app,
        name="same",
        tenant="acme",
        type="s3",
        account_id=VENDOR,
        bucket="own",
        region="us-east-1",
        base_path="exports",
    )
    iam = admin.client("iam", endpoint_url=aws.endpoint_url)
    iam.create_role(RoleName=conn.role_name, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName=conn.role_name,
        PolicyName="byob",
        PolicyDocument=json.dumps(app.connections.policies(conn)["permissions_policy"]),
    )
    return conn


def _trust(principal: str, external_id: str | None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"AWS": principal},
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def validate_enforced(app: Services, aws: LocalAws, name: str) -> list[CheckResult]:
    """Validate with the emulator enforcing IAM, as AWS always does."""
    aws.enforce_iam(True)
    try:
        return validate(app, name)[1]
    finally:
        aws.enforce_iam(False)


def test_a_wrong_external_id_fails_assume_role(tmp_path: Path, events: str, aws: LocalAws) -> None:
    app = enforcing_app(tmp_path, events, aws)
    principal = app.adapters.service_principal()
    conn = _same_account_connection(
        app, aws, trust=_trust(principal, "SomeoneElsesExternalId0000000000")
    )
    checks = validate_enforced(app, aws, conn.name)
    assume = checks_by_name(checks)["assume_role"]
    assert assume.outcome.value == "failed" and assume.aws_code == "AccessDenied", assume.message
    assert conn.role_arn in assume.message and "external ID" in assume.message
    assert {c.outcome.value for c in checks[1:]} == {"skipped"}


@pytest.mark.parametrize("strict", [True, False])
def test_a_trust_policy_without_the_condition_is_reported(
    tmp_path: Path, events: str, aws: LocalAws, strict: bool
) -> None:
    app = enforcing_app(tmp_path, events, aws, strict_trust_check=strict)
    conn = _same_account_connection(app, aws, trust=_trust(app.adapters.service_principal(), None))
    checks = validate_enforced(app, aws, conn.name)
    check = checks_by_name(checks)["external_id_required"]
    if strict:  # AWS itself: the confused-deputy hole fails validation
        assert check.outcome.value == "failed" and check.aws_code == "ExternalIdNotRequired"
        assert "confused-deputy" in check.message and conn.external_id in check.message
        assert checks_by_name(checks)["write_test_object"].outcome.value == "skipped"
    else:  # an endpoint that does not evaluate trust policies: said, not failed
        assert check.outcome.value == "warning" and check.aws_code == "ExternalIdNotEnforced"
        # What the endpoint did is byob's operator's business; the recipient reads what to keep.
        assert "accepts a wrong one too" in check.operator_note
        assert "BYOB_AWS_ENDPOINT_URL" in check.operator_note
        assert "BYOB_" not in check.message and "trust policy exactly as shown" in check.message


def test_delete_permission_is_needed_before_activation_and_optional_after(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws)
    no_delete = s3_policy("bkt", "exports", ["s3:PutObject", "s3:AbortMultipartUpload"])
    conn = new_connection(app, customer, permissions=no_delete)
    aws.enforce_iam(True)
    try:
        _, checks = validate(app, conn.name)
        delete = checks_by_name(checks)["delete_test_object"]
        assert delete.outcome.value == "failed" and delete.aws_code == "AccessDenied"
        assert "s3:DeleteObject" in delete.message

        # With the full policy it validates and activates; then the recipient withdraws
        # s3:DeleteObject, as the seeds allow: revalidation warns and names the leftover.
        customer.client("iam").put_role_policy(
            RoleName=conn.role_name,
            PolicyName="byob-transfer",
            PolicyDocument=json.dumps(app.connections.policies(conn)["permissions_policy"]),
        )
        validate(app, conn.name)
        activate(app, conn.name)
        customer.client("iam").put_role_policy(
            RoleName=conn.role_name,
            PolicyName="byob-transfer",
            PolicyDocument=json.dumps(no_delete),
        )
        _, checks = validate(app, conn.name)
    finally:
        aws.enforce_iam(False)
    delete = checks_by_name(checks)["delete_test_object"]
    assert delete.outcome.value == "warning", delete.message
    assert "left behind" in delete.message and "_byob_connection_test/" in delete.message
    assert app.connections.get(conn.name).status.value == "active"


def _athena_connection(
    app: Any, customer: Any, *, workgroup: str = "primary", permissions: Any = None
) -> Any:
    customer.create_bucket("lake")
    conn = create(
        app,
        name="lake",
        tenant="acme",
        type="athena",
        account_id=customer.account_id,
        bucket="lake",
        region="us-east-1",
        schema="billing",
        database="results",
        workgroup=workgroup,
    )
    policies = app.connections.policies(conn)
    customer.create_role(
        policies["role_name"],
        policies["trust_policy"],
        permissions or policies["permissions_policy"],
    )
    return conn


def test_athena_missing_workgroup_fails_and_says_what_to_do(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    conn = _athena_connection(app, customer_admin(aws), workgroup="analysts")
    _, checks = validate(app, conn.name)
    check = checks_by_name(checks)["workgroup"]
    assert check.outcome.value == "failed", check.message
    assert "'analysts' does not exist" in check.message and "primary" in check.message
    assert checks_by_name(checks)["athena_query"].outcome.value == "skipped"


def test_athena_workgroup_enforcing_its_own_results_location_is_a_warning(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    app = enforcing_app(tmp_path, events, aws)
    customer = customer_admin(aws)
    customer.client("athena").create_work_group(
        Name="locked",
        Configuration={
            "EnforceWorkGroupConfiguration": True,
            "ResultConfiguration": {"OutputLocation": "s3://elsewhere/results/"},
        },
    )
    conn = _athena_connection(app, customer, workgroup="locked")
    _, checks = validate(app, conn.name)
    check = checks_by_name(checks)["workgroup"]
    assert check.outcome.value == "warning", check.message
    assert (
        "s3://elsewhere/results/" in check.message
        and "s3://lake/results/athena_output/" in check.message
    )


def test_athena_denials_name_the_permission_and_resource(
    tmp_path: Path, events: str, aws: LocalAws
) -> None:
    """With enforcement on, the emulator refuses the first Athena call (it cannot match the
    seed policy's workgroup resource, and answers 403 where AWS says AccessDeniedException):
    the check must still say which permission on which resource to grant."""
    app = enforcing_app(tmp_path, events, aws)
    conn = _athena_connection(app, customer_admin(aws))
    checks = validate_enforced(app, aws, conn.name)
    by_name = checks_by_name(checks)
    assert by_name["write_test_object"].outcome.value == "passed"
    check = by_name["workgroup"]
    assert check.outcome.value == "failed" and check.aws_code == "AccessDeniedException", (
        check.message
    )
    assert "athena:GetWorkGroup" in check.message
    assert f"arn:aws:athena:us-east-1:{conn.account_id}:workgroup/primary" in check.message
    assert conn.role_name in check.message
    assert [by_name[n].outcome.value for n in ("glue_database", "athena_query")] == [
        "skipped",
        "skipped",
    ]
