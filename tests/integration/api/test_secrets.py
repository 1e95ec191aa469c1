"""Secrets over HTTP against a real server: an HMAC secret access key goes in once and never
comes out in clear text: not in any response, not in the server's log, not in the audit log,
not in the state store (raw SQLite files, or every column of every PostgreSQL table). Tokens
(API keys, links) are kept only as hashes. Rotating the secret returns the connection to
draft, and the `credentials` check tells a right key from a wrong one with IAM enforced."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from byob.demo.emulator import LocalAws
from tests.integration.api.conftest import Server
from tests.integration.api.helpers import API, error_of, ok, unique
from tests.support import CUSTOMER

pytestmark = pytest.mark.integration


def odd_secret() -> str:
    """A secret that does not look like an AWS one (not 40 characters), so that log redaction
    of AWS-shaped keys cannot hide a leak."""
    return "S3cr3t/" + secrets.token_urlsafe(18) + "+Zz"


def access_key_id() -> str:
    return "AKIA" + "".join(
        secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)
    )


class Responses:
    """Every response body a test saw, to search for secrets at the end."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def __call__(self, response: httpx.Response) -> httpx.Response:
        self.bodies.append(
            f"{response.request.method} {response.request.url} {response.status_code} "
            f"{dict(response.headers)} {response.text}"
        )
        return response

    def text(self) -> str:
        return "\n".join(self.bodies)


def assert_nowhere(server: Server, seen: Responses, *values: str, anchor: str) -> None:
    """None of the values in any response, in the server's log, audit log or state store
    (``anchor``, a connection id, proves the dump did read the store)."""
    log = server.log()
    audit = json.dumps(server.state.audit.recent(limit=100_000), default=str)
    state = server.state_text()
    assert anchor in state and anchor in audit
    for value in values:
        assert value not in seen.text(), "a secret came back in a response"
        assert value not in log, "a secret reached the server log"
        assert value not in audit, "a secret reached the audit log"
        assert value not in state, "a secret is in the state store in clear text"


@pytest.fixture
def iam_enforced(aws: LocalAws) -> Iterator[LocalAws]:
    """Enforcement on only inside the test, and off again whatever happens."""
    try:
        yield aws
    finally:
        aws.enforce_iam(False)


def test_hmac_secret_never_appears_in_clear(server: Server, ops: httpx.Client, aws: Any) -> None:
    seen = Responses()
    secret, rotated = odd_secret(), odd_secret()
    key_id = access_key_id()
    name, tenant = unique("hmac"), unique("tenant")
    body = {
        "name": name,
        "tenant": tenant,
        "account_id": CUSTOMER,
        "bucket": unique("hmac-bkt"),
        "region": "eu-west-1",
        "base_path": "exports",
        "access_key_id": key_id,
        "secret_access_key": secret,
    }
    created = ok(seen(ops.post(f"{API}/connections", json=body)), 201)
    assert created["auth"] == "hmac" and created["access_key_id"] == key_id
    assert "secret_access_key" not in created and created["role_arn"] == ""
    ok(seen(ops.get(f"{API}/connections/{name}")))
    ok(seen(ops.get(f"{API}/connections", params={"tenant": tenant})))
    policies = ok(seen(ops.get(f"{API}/connections/{name}/policies")))
    assert set(policies) == {"permissions_policy"}  # no role, no trust policy for HMAC
    ok(seen(ops.patch(f"{API}/connections/{name}", json={"frequency_minutes": 60})))
    checks = ok(seen(ops.post(f"{API}/connections/{name}/validate")))["checks"]
    assert checks[0]["name"] == "credentials"

    # Refused secrets are not echoed either.
    for bad in ("short-" + secret[:5], secret * 9):
        error = error_of(
            seen(ops.patch(f"{API}/connections/{name}", json={"secret_access_key": bad})), 422
        )
        assert error["field"] == "secret_access_key"
        assert bad[:10] not in error["message"]
    # A new key ID without its secret is refused.
    error = error_of(
        seen(ops.patch(f"{API}/connections/{name}", json={"access_key_id": access_key_id()})), 422
    )
    assert error["field"] == "secret_access_key"

    # Rotating the secret is a change of auth: back to draft (it was draft here; see below for
    # an active one), recorded as "(changed)".
    rotated_view = ok(
        seen(ops.patch(f"{API}/connections/{name}", json={"secret_access_key": rotated}))
    )
    assert rotated_view["status"] == "draft" and rotated_view["access_key_id"] == key_id
    ok(seen(ops.post(f"{API}/connections/{name}/validate")))
    updates = [
        e
        for e in server.state.audit.recent(connection_id=created["id"])
        if "secret_access_key" in e["changes"]
    ]
    assert updates and all("(changed)" in e["changes"]["secret_access_key"] for e in updates)

    # A recipient's secret, through a link, is kept the same way.
    link = ok(ops.post(f"{API}/links", json={"tenant": tenant}), 201)  # its token, shown once
    link_secret = odd_secret()
    with server.client(link["token"]) as recipient:
        mine = ok(
            seen(
                recipient.post(
                    f"{API}/recipient/connection",
                    json={
                        "name": unique("hmac-link"),
                        "account_id": CUSTOMER,
                        "bucket": unique("hmac-bkt"),
                        "region": "eu-west-1",
                        "access_key_id": access_key_id(),
                        "secret_access_key": link_secret,
                    },
                )
            ),
            201,
        )
        assert mine["auth"] == "hmac"
        ok(seen(recipient.get(f"{API}/recipient/connection")))
        ok(seen(recipient.patch(f"{API}/recipient/connection", json={"base_path": "in"})))
        ok(seen(recipient.post(f"{API}/recipient/connection/validate")))
    ok(seen(ops.get(f"{API}/links", params={"tenant": tenant})))
    # Opening the link's URL (the recipient's landing page) puts the token in a request line:
    # the access log must not keep it.
    with server.client("") as browser:
        assert browser.get(link["url"]).status_code < 500

    assert_nowhere(server, seen, secret, rotated, link_secret, anchor=created["id"])
    # Tokens are secrets too: kept only as hashes, never logged, never shown again.
    assert_nowhere(server, seen, server.token, link["token"], anchor=mine["id"])


def test_rotating_the_secret_redrafts_and_credentials_check_tells_keys_apart(
    server: Server, ops: httpx.Client, iam_enforced: LocalAws
) -> None:
    aws = iam_enforced
    seen = Responses()
    bucket, name = unique("hmac-real"), unique("hmac-real")
    customer = aws.customer(CUSTOMER, "eu-west-1")
    customer.create_bucket(bucket)
    iam = customer.client("iam")
    user = unique("writer")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    right = key["SecretAccessKey"]
    wrong = right[:-8] + ("A" * 8 if not right.endswith("A" * 8) else "B" * 8)

    body = {
        "name": name,
        "tenant": "acme",
        "account_id": CUSTOMER,
        "bucket": bucket,
        "region": "eu-west-1",
        "base_path": "exports",
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": right,
    }
    created = ok(seen(ops.post(f"{API}/connections", json=body)), 201)
    policy = ok(seen(ops.get(f"{API}/connections/{name}/policies")))["permissions_policy"]
    iam.put_user_policy(UserName=user, PolicyName="byob", PolicyDocument=json.dumps(policy))

    aws.enforce_iam(True)
    passing = ok(seen(ops.post(f"{API}/connections/{name}/validate")))
    outcomes = {c["name"]: c for c in passing["checks"]}
    assert passing["passed"] is True, passing
    assert outcomes["credentials"]["outcome"] == "passed"
    assert f"arn:aws:iam::{CUSTOMER}:user/{user}" in outcomes["credentials"]["message"]
    assert ok(seen(ops.post(f"{API}/connections/{name}/activate")))["status"] == "active"

    redrafted = ok(seen(ops.patch(f"{API}/connections/{name}", json={"secret_access_key": wrong})))
    assert redrafted["status"] == "draft"
    error_of(seen(ops.post(f"{API}/transfers", json={"connection": name})), 409)
    failing = ok(seen(ops.post(f"{API}/connections/{name}/validate")))
    outcomes = {c["name"]: c for c in failing["checks"]}
    assert failing["passed"] is False
    assert outcomes["credentials"]["outcome"] == "failed"
    assert outcomes["credentials"]["aws_code"] in ("SignatureDoesNotMatch", "InvalidClientTokenId")
    assert key["AccessKeyId"] in outcomes["credentials"]["message"]
    assert {c["outcome"] for n, c in outcomes.items() if n != "credentials"} == {"skipped"}
    error_of(seen(ops.post(f"{API}/connections/{name}/activate")), 409)

    ok(seen(ops.patch(f"{API}/connections/{name}", json={"secret_access_key": right})))
    assert ok(seen(ops.post(f"{API}/connections/{name}/validate")))["passed"] is True
    assert ok(seen(ops.post(f"{API}/connections/{name}/activate")))["status"] == "active"
    aws.enforce_iam(False)

    assert_nowhere(server, seen, right, wrong, anchor=created["id"])


@pytest.mark.parametrize("how", ["create", "update"])
def test_a_secret_without_an_access_key_is_refused(
    server: Server, ops: httpx.Client, how: str
) -> None:
    name = unique("role-secret")
    body = {
        "name": name,
        "tenant": "acme",
        "account_id": CUSTOMER,
        "bucket": unique("bkt"),
        "region": "eu-west-1",
    }
    secret = odd_secret()
    if how == "create":
        response = ops.post(f"{API}/connections", json=body | {"secret_access_key": secret})
    else:
        ok(ops.post(f"{API}/connections", json=body), 201)
        response = ops.patch(f"{API}/connections/{name}", json={"secret_access_key": secret})
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] in ("secret_access_key", "access_key_id")
    conn = server.state.connections.get(name) if how == "update" else None
    if conn is not None:
        assert server.state.connections.sealed_secret(conn.id) is None
