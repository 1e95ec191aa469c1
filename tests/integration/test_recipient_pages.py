"""What byob says about its own configuration stays with its operator. On the AWS emulator
(BYOB_AWS_ENDPOINT_URL set, trust policies not enforced) the external-ID check can only warn;
the recipient reads what to keep in their trust policy, never byob's settings, on any page or
API answer of theirs, while the operator's page and the log say what the endpoint did."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from byob.demo.emulator import LocalAws
from byob.domain.credentials import parse_lifetime
from byob.web.app import create_app
from tests.support import CUSTOMER, INVOICES_MODEL, create_invoices, make_services, write_config

pytestmark = pytest.mark.integration

OPERATOR_ONLY = ("BYOB_", "endpoint_url")


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def recipient_safe(text: str, where: str) -> None:
    for word in OPERATOR_ONLY:
        assert word not in text, f"{where} shows {word!r} to the recipient"


def test_emulator_diagnostics_reach_the_operator_and_never_the_recipient(
    tmp_path: Path, pg_url: str, aws: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    create_invoices(pg_url, is_acme=lambda i: i % 2 == 1)
    services = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", pg_url, [INVOICES_MODEL]), aws
    )
    assert not services.adapters.settings.trust_check_is_strict  # the emulator: a warning
    _, key = services.api_keys.create("ops")
    _, token = services.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli")
    customer = aws.customer(CUSTOMER, "eu-west-1")
    customer.create_bucket("acme-data")
    caplog.set_level(logging.INFO, logger="byob.connections")

    with TestClient(create_app(services)) as recipient:
        opened = recipient.get(f"/connect/{token}")
        assert opened.status_code == 200
        recipient_safe(opened.text, "the link's landing page")
        form = recipient.get("/connect/bucket?type=s3")
        recipient_safe(form.text, "the bucket step")
        fields = {
            "type": "s3",
            "name": "acme-s3",
            "account_id": CUSTOMER,
            "bucket": "acme-data",
            "region": "eu-west-1",
            "base_path": "exports",
            "auth": "role",
            "workgroup": "primary",
        }
        sent = recipient.post("/connect/bucket", data=fields | {"csrf_token": csrf_of(form.text)})
        assert sent.status_code == 200, sent.text[:3000]
        conn = services.connections.get("acme-s3")
        policies = services.connections.policies(conn)
        customer.create_role(
            policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
        )
        role = recipient.get("/connect/role")
        recipient_safe(role.text, "the IAM role step")
        validated = recipient.post("/connect/validate", data={"csrf_token": csrf_of(role.text)})
        assert validated.status_code == 200, validated.text[:3000]
        # The check warned (the emulator accepts AssumeRole without the external ID) ...
        assert "not proven" in validated.text and "trust policy exactly as shown" in validated.text
        recipient_safe(validated.text, "the validation step")
        api = {"Authorization": f"Bearer {token}"}
        recipient_safe(recipient.get("/api/v1/recipient/connection", headers=api).text, "API")
        again = recipient.post("/api/v1/recipient/connection/validate", headers=api)
        assert again.status_code == 200 and "ExternalIdNotEnforced" in again.text
        recipient_safe(again.text, "the recipient API's validation")
        done = recipient.post("/connect/activate", data={"csrf_token": csrf_of(validated.text)})
        assert done.status_code == 200, done.text[:3000]
        recipient_safe(done.text, "the done step")

    # ... which the operator reads on the connection's page, and in the log.
    with TestClient(create_app(services)) as operator:
        login = operator.get("/login")
        operator.post("/login", data={"api_key": key, "csrf_token": csrf_of(login.text)})
        page = operator.get(f"/connections/{conn.id}")
        assert page.status_code == 200
        assert "For byob's operator:" in page.text
        assert "BYOB_AWS_ENDPOINT_URL accepted AssumeRole" in page.text
    noted = [r.getMessage() for r in caplog.records if "BYOB_AWS_ENDPOINT_URL" in r.getMessage()]
    assert noted and "external_id_required" in noted[0] and "acme-s3" in noted[0]
