"""What follows an action, the same on the operator's pages and on the command line: a pass
on a failing active connection resumes its transfers (not "can be activated"), and a resumed
connection that is still failing stays held (not "transfers run on its schedule")."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from byob.demo.emulator import LocalAws
from byob.domain.connections import NEXT_STEPS
from byob.services import Services
from byob.web.app import create_app
from tests.support import (
    CUSTOMER,
    INVOICES_MODEL,
    create_invoices,
    make_services,
    onboard_s3,
    write_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def config(tmp_path: Path, pg_url: str) -> Path:
    create_invoices(pg_url, is_acme=lambda i: i % 3 != 0)
    return write_config(tmp_path / "byob.toml", pg_url, [INVOICES_MODEL])


@pytest.fixture
def services(tmp_path: Path, config: Path, aws: LocalAws) -> Services:
    return make_services(tmp_path, config, aws)


@pytest.fixture
def operator(services: Services) -> Iterator[TestClient]:
    _, key = services.api_keys.create("ops")
    with TestClient(create_app(services)) as client:
        login = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token
        client.post("/login", data={"api_key": key, "csrf_token": token.group(1)})
        yield client


def act(client: TestClient, name: str, action: str) -> str:
    page = client.get(f"/connections/{name}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:2000]
    done = client.post(f"/connections/{name}/{action}", data={"csrf_token": token.group(1)})
    assert done.status_code == 200, done.text[:2000]
    return html.unescape(done.text)


def fail(services: Services, conn_id: str) -> None:
    services.adapters.state.connections.mark_failing(
        conn_id, check="write_access", message="AccessDenied", now=datetime.now(UTC)
    )


def test_a_pass_on_a_failing_active_connection_says_its_transfers_resume(
    services: Services, operator: TestClient, aws: LocalAws
) -> None:
    conn, _ = onboard_s3(services, aws)
    fail(services, conn.id)

    page = act(operator, conn.name, "validate")

    assert NEXT_STEPS["validated_active"] in page
    assert NEXT_STEPS["validated"] not in page
    assert not services.connections.get(conn.id).is_failing


def test_resuming_a_connection_still_failing_says_its_transfers_stay_held(
    services: Services, operator: TestClient, aws: LocalAws, tmp_path: Path, config: Path
) -> None:
    conn, _ = onboard_s3(services, aws)
    fail(services, conn.id)
    services.connections.pause(conn.name, actor="cli")

    page = act(operator, conn.name, "resume")

    assert NEXT_STEPS["resumed_held"] in page and NEXT_STEPS["resumed"] not in page
    # The command line says the same of the same connection.
    services.connections.pause(conn.name, actor="cli")
    env = {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        "PATH": "/usr/bin:/bin",
    }
    said = subprocess.run(
        [sys.executable, "-m", "byob.cli", "connections", "resume", conn.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert said.returncode == 0, said.stderr
    assert NEXT_STEPS["resumed_held"] in " ".join(said.stdout.split())


def test_a_link_lifetime_out_of_range_on_the_connection_page_is_422_like_the_api(
    services: Services, operator: TestClient, aws: LocalAws
) -> None:
    conn, _ = onboard_s3(services, aws)
    page = operator.get(f"/connections/{conn.name}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    sent = operator.post(
        f"/connections/{conn.name}/read-only-link",
        data={"csrf_token": token.group(1), "expires": "91d"},
    )
    assert sent.status_code == 422 and "between 1 minute and 90 days" in sent.text


def test_a_failed_check_says_what_to_fix_on_the_operators_page_too(
    services: Services, operator: TestClient
) -> None:
    """The fix lived in the wizard only; it is the view's now, so the operator's page (and
    the API, the CLI) says it beside the check."""
    conn = services.connections.create(
        actor="cli",
        name="no-role",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="nobody-made-this",
        region="eu-west-1",
    ).connection

    page = act(operator, conn.name, "validate")

    checks = services.connections.view(services.connections.get(conn.id))["validation"]["checks"]
    fixes = [c["fix"] for c in checks if c["outcome"] == "failed" and c["fix"]]
    flat = " ".join(page.split())
    assert fixes and all(f"What to fix:</strong> {fix}" in flat for fix in fixes), fixes
