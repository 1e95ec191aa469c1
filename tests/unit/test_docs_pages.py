"""The API's documentation pages name no other host: every script, style and icon they load
is served by byob (tests/browser loads them in Chromium with the network cut)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from byob.container import Byob
from byob.services import Services
from byob.settings import load_settings
from byob.web.app import create_app
from byob.web.docs import ASSETS_URL


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    byob = Byob(
        load_settings(home=tmp_path / ".byob", service_principal_arn="arn:aws:iam::1:role/b")
    )
    byob.migrate()
    try:
        with TestClient(create_app(Services(byob))) as test_client:
            yield test_client
    finally:
        byob.close()


@pytest.mark.parametrize(
    ("page", "assets"),
    [("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})],
)
def test_the_docs_load_only_from_byob(client: TestClient, page: str, assets: set[str]) -> None:
    shown = client.get(page)
    assert shown.status_code == 200, shown.text[:500]
    loaded = re.findall(r"""(?:src|href|spec-url)\s*=\s*['"]([^'"]+)['"]""", shown.text)
    loaded += re.findall(r"""url:\s*['"]([^'"]+)['"]""", shown.text)  # Swagger UI's OpenAPI
    assert loaded, shown.text
    assert [u for u in loaded if "//" in u] == [], "a documentation page loads from elsewhere"
    assert {u.rsplit("/", 1)[1] for u in loaded if u.startswith(ASSETS_URL)} >= assets
    assert "/openapi.json" in loaded
    for url in loaded:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.content, url
