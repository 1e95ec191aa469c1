"""A failing connection's banner and list row read as sentences a person understands: what
failed, since when, why, and what to do, with check labels instead of identifiers."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from byob.container import Byob
from byob.services import Services
from byob.settings import load_settings
from byob.web.app import create_app
from byob.web.pages_help import failing_headline

MESSAGE = (
    "AccessDenied on PutObject into s3://acme-data/exports: attach the permissions policy "
    "shown to role byob-acme"
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    byob = Byob(
        load_settings(home=tmp_path / ".byob", service_principal_arn="arn:aws:iam::1:role/b")
    )
    byob.migrate()
    services = Services(byob)
    _, key = services.api_keys.create("ops")
    try:
        with TestClient(create_app(services)) as test_client:
            form = test_client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token
            signed_in = test_client.post(
                "/login", data={"api_key": key, "csrf_token": token.group(1)}
            )
            assert signed_in.status_code == 200
            yield test_client, services
    finally:
        byob.close()


def text_of(page: str) -> str:
    """The page as a person reads it: no tags, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_failing_banner_is_a_sentence_with_what_to_do(
    client: tuple[TestClient, Services], tmp_path: Path
) -> None:
    test_client, services = client
    conn = services.connections.create(
        actor="cli", name="local-1", tenant="acme", type="local", path=str(tmp_path / "out")
    ).connection
    services.connections.mark_failing(conn, check="transfer", message=MESSAGE)
    since = services.connections.get(conn.id).failing_since
    assert since is not None

    page = test_client.get(f"/connections/{conn.id}")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "Transfers are held" in shown
    assert (
        f"Transfers have failed since {since:%Y-%m-%d %H:%M:%S} UTC: "
        f"{MESSAGE[0].upper()}{MESSAGE[1:]}."
    ) in shown
    assert "What to do: have the cause fixed" in shown and "then press Validate" in shown
    assert "A passing validation resumes the transfers" in shown
    assert "Check transfer" not in shown and "<code>transfer</code>" not in page.text

    listing = text_of(test_client.get("/connections").text)
    assert "Failing Transfers have failed" in listing
    assert "Failing transfer " not in listing


def test_a_failing_check_reads_as_its_label() -> None:
    assert failing_headline("transfer") == "Transfers have failed"
    assert failing_headline("bucket_region") == (
        "The check “The bucket exists in the chosen region” has failed"
    )
    assert failing_headline("something_new") == "The check “something new” has failed"
