"""The pages' guards, in Chromium and over plain HTTP: links that can no longer be used,
CSRF, operator sign-in, and the operator's link management."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from byob.domain.connections import AuthKind, Connection, ConnectionType, Status
from byob.domain.fields import WHAT_TO_PUT
from byob.store import tables as T
from byob.store.db import create_engine
from byob.store.state import StateStore
from byob.web.pages import PAGE_SIZE
from tests.browser.conftest import DESKTOP, PHONE, Served, assert_fits, csrf_of

pytestmark = pytest.mark.browser


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def expire(served: Served, link_id: str) -> None:
    engine = create_engine(f"sqlite:///{served.home / 'state.sqlite'}")
    try:
        with engine.begin() as db:
            db.execute(
                T.links.update()
                .where(T.links.c.id == link_id)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
    finally:
        engine.dispose()


def test_links_that_can_no_longer_be_used_say_so(served: Served, browser: Any, shoot: Any) -> None:
    page = browser.new_context(viewport=DESKTOP).new_page()

    revoked = served.link(tenant())
    served.revoke_link(revoked["id"])
    response = page.goto(revoked["url"])
    assert response.status == 410
    assert page.get_by_role("heading", name="This link can no longer be used").is_visible()
    assert "was revoked; ask your vendor for a new one" in page.locator("main").inner_text()
    shoot(page, "revoked")

    expired = served.link(tenant())
    expire(served, expired["id"])
    response = page.goto(expired["url"])
    assert response.status == 410 and "has expired" in page.locator("main").inner_text()

    response = page.goto(f"{served.base_url}/connect/byob_link_{'x' * 43}")
    assert (
        response.status == 404
        and "This connection link is not valid" in page.locator("main").inner_text()
    )
    shoot(page, "unknown")

    # Without the link's session the wizard says how to get in; no stack trace anywhere.
    response = page.goto(f"{served.base_url}/connect/bucket")
    assert (
        response.status == 401 and "Open your connection link" in page.locator("main").inner_text()
    )

    # A link revoked in the middle of the wizard stops working at the next page.
    midway = served.link(tenant())
    page.goto(midway["url"])
    page.wait_for_url(re.compile(r"/connect/type$"))
    served.revoke_link(midway["id"])
    with page.expect_response(re.compile(r"/connect/type$")) as answer:
        page.get_by_role("button", name="Continue").click()
    assert answer.value.status == 410
    page.get_by_role("heading", name="This link can no longer be used").wait_for()
    assert "was revoked" in page.locator("main").inner_text()
    assert "Traceback" not in page.content()
    page.context.close()


def test_forms_without_the_csrf_token_are_refused(served: Served) -> None:
    link = served.link(tenant())
    with httpx.Client(base_url=served.base_url, follow_redirects=True, timeout=30) as recipient:
        landing = recipient.get(link["url"].removeprefix(served.base_url))
        assert landing.status_code == 200 and str(landing.url).endswith("/connect/type")
        cookie = next(c for c in recipient.cookies.jar if c.name == "byob_link")
        assert cookie.path == "/connect" and cookie.has_nonstandard_attr("HttpOnly")
        assert "samesite=strict" in landing.history[0].headers["set-cookie"].lower()
        token = csrf_of(landing.text)

        refused = recipient.post("/connect/type", data={"type": "s3"})
        assert refused.status_code == 403
        assert "out of date or did not come from this site" in refused.text
        assert (
            recipient.post("/connect/type", data={"type": "s3", "csrf_token": "forged"}).status_code
            == 403
        )
        other_site = recipient.post(
            "/connect/type",
            data={"type": "s3", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert other_site.status_code == 403
        live = recipient.post("/connect/validate-field", json={"field": "bucket", "value": "x"})
        assert live.status_code == 403
        live = recipient.post(
            "/connect/validate-field",
            json={"field": "bucket", "value": "x"},
            headers={"X-CSRF-Token": token},
        )
        assert live.json()["ok"] is False and "3 to 63 characters" in live.json()["message"]
        accepted = recipient.post("/connect/type", data={"type": "s3", "csrf_token": token})
        assert accepted.status_code == 200 and str(accepted.url).endswith("/connect/bucket?type=s3")

    with httpx.Client(base_url=served.base_url, follow_redirects=True, timeout=30) as operator:
        form = operator.get("/login")
        assert operator.post("/login", data={"api_key": served.ops_token}).status_code == 403
        signed_in = operator.post(
            "/login", data={"api_key": served.ops_token, "csrf_token": csrf_of(form.text)}
        )
        assert signed_in.status_code == 200 and str(signed_in.url).endswith("/connections")
        assert operator.post("/links", data={"tenant": "acme"}).status_code == 403
        assert operator.post("/connections/any/pause", data={}).status_code == 403
        assert operator.post("/logout", data={"csrf_token": "forged"}).status_code == 403


def test_operator_sign_in_needs_a_live_key(served: Served, browser: Any, shoot: Any) -> None:
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(f"{served.base_url}/connections")
    page.wait_for_url(re.compile(r"/login\?next=/connections$"))
    page.get_by_label("API key").fill("byob_key_not-a-real-key")
    with page.expect_response(re.compile(r"/login$")) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    assert "That API key is not valid" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("API key").input_value() == ""  # the key is not echoed back
    shoot(page, "bad-key")

    name = f"ops-{uuid.uuid4().hex[:6]}"
    key = served.cli("api-keys", "create", "--name", name, "--json")["token"]
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/connections$"))
    assert page.get_by_role("heading", name="Manage Connections").is_visible()

    served.cli("api-keys", "revoke", name, "--json")  # a revoked key ends its sessions
    page.reload()
    page.wait_for_url(re.compile(r"/login"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    assert "That API key is not valid" in page.get_by_role("alert").inner_text()
    page.context.close()


def test_operator_creates_copies_and_revokes_a_link(
    served: Served, browser: Any, shoot: Any
) -> None:
    context = browser.new_context(viewport=PHONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.base_url)
    page = context.new_page()
    page.goto(f"{served.base_url}/login")
    page.get_by_label("API key").fill(served.ops_token)
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_url(re.compile(r"/connections$"))
    assert_fits(page)
    shoot(page, "connections-phone")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Links").click()
    who = tenant()
    page.get_by_label("Tenant").fill(who)
    page.get_by_label("Expires after").select_option("1d")
    page.get_by_role("button", name="Create link").click()
    url = page.locator("#new-link-url").inner_text()
    assert url.startswith(f"{served.base_url}/connect/byob_link_")
    page.locator('[data-copy="new-link-url"]').click()
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert_fits(page)
    shoot(page, "link-created-phone")

    page.goto(f"{served.base_url}/links")
    assert url not in page.content()  # shown once only
    row = page.get_by_role("row").filter(has_text=who)
    assert "Open" in row.inner_text()
    row.get_by_role("button", name=re.compile("Revoke")).click()
    page.get_by_role("status").filter(has_text="The link was revoked").wait_for()
    assert "Revoked" in page.get_by_role("row").filter(has_text=who).inner_text()
    shoot(page, "link-revoked-phone")

    recipient = browser.new_context(viewport=PHONE).new_page()
    assert recipient.goto(url).status == 410
    recipient.context.close()
    context.close()


GOOD = {
    "name": "parity",
    "type": "s3",
    "account_id": "210987654321",
    "bucket": "parity-data",
    "region": "eu-west-1",
    "base_path": "exports",
}
BAD = [
    ("name", "-x", {}),
    ("account_id", "12345", {}),
    ("bucket", "Bad_Bucket", {}),
    ("region", "mars-1", {}),
    ("base_path", "/abs", {}),
    ("base_path", "a/../b", {}),
    ("base_path", "_hidden", {}),
    ("role_arn", "arn:aws:iam::999999999999:role/r", {}),
    ("role_arn", "not-an-arn", {}),
    ("access_key_id", "akia", {"secret_access_key": "s" * 40}),
    ("secret_access_key", "short", {"access_key_id": "AKIAIOSFODNN7EXAMPLE"}),
    ("schema", "Billing", {"type": "athena", "database": "queries"}),
    ("database", "billing", {"type": "athena", "schema": "billing"}),
    ("workgroup", "bad group", {"type": "athena", "schema": "billing", "database": "queries"}),
    # Left empty: "<field> is required: <what to put>", the same words at every door.
    ("name", "", {}),
    ("account_id", "", {}),
    ("bucket", "", {}),
    ("region", "", {}),
    ("schema", "", {"type": "athena", "database": "queries"}),
    ("database", "", {"type": "athena", "schema": "billing"}),
]


@pytest.mark.parametrize(("field", "value", "extra"), BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_live_messages_are_the_api_messages(
    served: Served, field: str, value: str, extra: dict[str, str]
) -> None:
    link = served.link(tenant())
    body = GOOD | extra | {field: value}
    api = httpx.post(
        f"{served.base_url}/api/v1/recipient/connection",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {link['token']}"},
    )
    assert api.status_code == 422, api.text
    error = api.json()["error"]
    assert error["field"] == field
    if not value:
        assert error["message"] == f"{field} is required: {WHAT_TO_PUT[field]}"
    with httpx.Client(base_url=served.base_url, follow_redirects=True, timeout=30) as browser_like:
        page = browser_like.get(link["url"].removeprefix(served.base_url))
        live = browser_like.post(
            "/connect/validate-field",
            headers={"X-CSRF-Token": csrf_of(page.text)},
            json={"field": field, "value": value, "context": body},
        ).json()
        assert live == {"field": field, "ok": False, "message": error["message"]}
        # ... and the server's own check of the submitted form says the same, by the field.
        form = {k: v for k, v in body.items() if k != "type"} | {
            "csrf_token": csrf_of(page.text),
            "type": body["type"],
            "auth": "hmac" if "access_key_id" in body else "role",
            "workgroup": body.get("workgroup", "primary"),
        }
        submitted = browser_like.post("/connect/bucket", data=form)
        assert submitted.status_code == 422
        shown = re.search(
            rf'id="f-{field}-error" data-error-for="{field}">([^<]*)<', submitted.text
        )
        assert shown and html.unescape(shown.group(1)) == error["message"]


def test_the_connections_list_pages_instead_of_capping(
    served: Served, browser: Any, shoot: Any
) -> None:
    who = tenant()
    state = create_engine(f"sqlite:///{served.home / 'state.sqlite'}")
    store = StateStore(state)
    start = datetime.now(UTC)
    for i in range(PAGE_SIZE + 5):
        at = start + timedelta(milliseconds=i)
        store.connections.add(
            Connection(
                id=uuid.uuid4().hex,
                name=f"c{i:03d}",
                tenant=who,
                type=ConnectionType.LOCAL,
                status=Status.DRAFT,
                path=f"/tmp/{who}/{i}",
                auth=AuthKind.NONE,
                created_at=at,
                updated_at=at,
            )
        )
    state.dispose()

    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(f"{served.base_url}/login")
    page.get_by_label("API key").fill(served.ops_token)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/connections$"))
    page.get_by_label("Tenant").fill(who)
    page.get_by_role("button", name="Filter").click()
    caption = page.locator("#conn-caption")
    assert caption.inner_text() == f"{PAGE_SIZE} of {PAGE_SIZE + 5} connections, oldest first"
    assert page.locator("tbody tr").count() == PAGE_SIZE
    assert page.get_by_role("link", name="← Previous").count() == 0
    page.get_by_role("link", name="Next →").click()
    assert [r.inner_text() for r in page.locator("tbody th").all()] == [
        f"c{i:03d}" for i in range(PAGE_SIZE, PAGE_SIZE + 5)
    ]
    assert page.get_by_role("link", name="Next →").count() == 0
    shoot(page, "connections-last-page")
    page.get_by_role("link", name="← Previous").click()
    assert page.locator("tbody th").first.inner_text() == "c000"
    assert page.locator("tbody tr").count() == PAGE_SIZE
    page.goto(f"{served.base_url}/connections?after=forged")
    assert "is not a page cursor" in page.locator("main").inner_text()
    page.context.close()
