"""A byob without an AWS identity runs degraded and says so everywhere: once in the log, on
/health, on the operator's pages, and to a recipient opening a link (a 503 page that asks
them to contact the vendor, never a 502 at the IAM step)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from byob.container import Byob
from byob.domain.credentials import parse_lifetime
from byob.services import Services
from byob.settings import load_settings
from byob.web.app import create_app
from tests.support import free_port


@pytest.fixture
def degraded(tmp_path: Path) -> Iterator[Services]:
    """Nothing answers at byob's AWS endpoint, and no principal is configured."""
    byob = Byob(
        load_settings(
            home=tmp_path / ".byob",
            aws_endpoint_url=f"http://127.0.0.1:{free_port()}",
            aws_max_attempts=1,
        )
    )
    byob.migrate()
    yield Services(byob)
    byob.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def test_the_cause_is_logged_once(degraded: Services, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="byob.health")
    first = degraded.health.identity_problem()
    assert first is not None and "BYOB_SERVICE_PRINCIPAL_ARN" in first
    assert degraded.health.identity_problem() == first  # remembered for a minute
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "recipients cannot onboard" in warnings[0].getMessage()


def test_health_pages_and_links_say_byob_is_not_ready(degraded: Services) -> None:
    _, key = degraded.api_keys.create("ops")
    _, token = degraded.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli")
    with TestClient(create_app(degraded)) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert "BYOB_SERVICE_PRINCIPAL_ARN" in health["problems"][0]

        form = client.get("/login")
        page = client.post("/login", data={"api_key": key, "csrf_token": csrf_of(form.text)})
        assert page.status_code == 200 and "Recipients cannot create connections" in page.text

        opened = client.get(f"/connect/{token}", follow_redirects=False)
        assert opened.status_code == 503
        assert "not ready to accept connections" in opened.text
        assert "BYOB_" not in opened.text  # operator configuration is not the recipient's to read


def test_a_known_identity_is_healthy(tmp_path: Path) -> None:
    byob = Byob(
        load_settings(home=tmp_path / ".byob", service_principal_arn="arn:aws:iam::1:role/b")
    )
    byob.migrate()
    services: Any = Services(byob)
    try:
        _, token = services.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli")
        with TestClient(create_app(services)) as client:
            assert client.get("/health").json() == {"status": "ok", "problems": []}
            assert client.get(f"/connect/{token}", follow_redirects=False).status_code == 303
    finally:
        byob.close()
