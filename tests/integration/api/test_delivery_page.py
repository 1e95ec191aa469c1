"""The recipient's delivery page against a real server: after activation the link holder's
session, and later a read-only link an operator sends, show the connection's status, its
transfers and how to read the data; a read-only link writes nothing (403), reads only its own
connection, and expires and is revoked like any link."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from byob.domain.fixes import recipient_fix
from byob.store import tables as T
from tests.integration.api.conftest import Server
from tests.integration.api.helpers import (
    ACME_IDS,
    API,
    customer_sets_up,
    error_of,
    ok,
    onboard,
    s3_body,
    transfer_ids,
    unique,
    wait_for_transfer,
)
from tests.integration.api.test_links import RECIPIENT_CALLS, call, new_link, recipient_body

pytestmark = pytest.mark.integration

WIZARD_POSTS = ("/connect/type", "/connect/bucket", "/connect/role", "/connect/validate")


def read_only_link(ops: httpx.Client, tenant: str, connection: str, **extra: Any) -> Any:
    body = {"tenant": tenant, "connection": connection, "read_only": True} | extra
    return ok(ops.post(f"{API}/links", json=body), 201)


def page_text(response: httpx.Response) -> str:
    """The page's main content as text, without tags."""
    assert response.status_code == 200, (response.status_code, response.text[:2000])
    main = response.text.split("<main", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def activate_through_link(
    holder: httpx.Client, api: httpx.Client, link: dict[str, Any], aws: Any, name: str, bucket: str
) -> dict[str, Any]:
    """The holder opens the link (a session cookie) and onboards through the recipient API;
    activation spends the link. The connection as activated."""
    assert holder.get(f"/connect/{link['token']}").status_code in (200, 303)
    ok(api.post(f"{API}/recipient/connection", json=recipient_body(name, bucket)), 201)
    customer_sets_up(aws, ok(api.get(f"{API}/recipient/connection/policies")), bucket)
    assert ok(api.post(f"{API}/recipient/connection/validate"))["passed"] is True
    activated: dict[str, Any] = ok(api.post(f"{API}/recipient/connection/activate"))
    return activated


def test_delivery_page_after_a_real_transfer_then_a_read_only_link(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    link = new_link(ops, "acme")
    name, bucket = unique("deliver"), unique("dlv")
    with server.client("") as holder, server.client(link["token"]) as api:
        conn = activate_through_link(holder, api, link, aws, name, bucket)

        before = page_text(holder.get("/connect/delivery"))
        assert "Your deliveries" in before and "No transfers yet" in before
        assert f"s3://{bucket}/shared" in before

        triggered = ok(ops.post(f"{API}/transfers", json={"connection": name}), 202)
        (transfer_id,) = transfer_ids(ops, name, triggered)
        done = wait_for_transfer(ops, transfer_id)
        assert done["status"] == "succeeded" and done["rows"] == len(ACME_IDS)

        shown = holder.get("/connect/delivery")
        text = page_text(shown)
        assert "Active" in text and "Last transfers" in text and "Succeeded" in text
        row = re.search(r"invoices Succeeded (\d+) (\d+) ", text)
        assert row, text
        assert (int(row[1]), int(row[2])) == (len(ACME_IDS), done["files"])
        snippet = f"read_parquet('s3://{bucket}/shared/invoices/*/*.parquet'"
        assert snippet in html.unescape(shown.text)
        assert "pyarrow.dataset" in shown.text
        assert "data-local-time" in shown.text  # the next run, also in the viewer's time
        for secret in ("BYOB_", "endpoint_url", "operator_note", "secret_access_key"):
            assert secret not in shown.text
        # The spent link's session reads; nothing of the wizard that writes.
        for path in WIZARD_POSTS:
            assert holder.post(path, data={"csrf_token": "x"}).status_code == 410
        # The done page (the wizard's last) is the same page, as just activated.
        assert "Your connection is active" in page_text(holder.get("/connect/done"))

    # Later, the operator sends a read-only link; creating it is audited.
    viewer = read_only_link(ops, "acme", name, expires="1h")
    assert viewer["read_only"] is True and viewer["connection_id"] == conn["id"]
    assert viewer["state"] == "open"
    audit = [
        e
        for e in server.state.audit.recent(limit=1000)
        if e["action"] == "link.create" and e["changes"].get("link") == viewer["id"]
    ]
    assert [(e["actor"], e["changes"].get("read_only")) for e in audit] == [("operator:ops", True)]
    assert server.link_row(viewer["id"])["token_hash"] != viewer["token"]

    with server.client("") as browser:
        opened = browser.get(f"/connect/{viewer['token']}", follow_redirects=True)
        assert urlsplit(str(opened.url)).path == "/connect/delivery"
        text = page_text(opened)
        assert name in text and f"{len(ACME_IDS)} " in text and "Succeeded" in text
        assert "This link has now been used" not in text
        # Never the wizard: its pages and its POSTs are refused, with the reason.
        for path in ("/connect/type", "/connect/role", "/connect/validate"):
            refused = browser.get(path)
            assert refused.status_code == 403 and "only shows your deliveries" in refused.text
        for path in WIZARD_POSTS:
            assert browser.post(path, data={"csrf_token": "x"}).status_code == 403

    with server.client(viewer["token"]) as reader:
        listed = ok(reader.get(f"{API}/recipient/transfers"))["items"]
        assert [t["id"] for t in listed] == [transfer_id]
        for method, path, body in RECIPIENT_CALLS:
            if method == "GET":
                continue
            error = error_of(call(reader, method, path, body), 403)
            assert "only shows your connection's deliveries" in error["message"]
        error_of(reader.get(f"{API}/connections"), 403)


def test_read_only_links_show_only_their_own_tenant(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    tenant = unique("tenant")
    onboard(ops, aws, s3_body(mine, unique("mine"), tenant="acme"))
    onboard(ops, aws, s3_body(theirs, unique("theirs"), tenant=tenant))
    triggered = ok(ops.post(f"{API}/transfers", json={"connection": mine}), 202)
    wait_for_transfer(ops, transfer_ids(ops, mine, triggered)[0])

    # A link names a connection of its own tenant only; a draft is not shown (it is set up).
    error = error_of(
        ops.post(f"{API}/links", json={"tenant": tenant, "connection": mine, "read_only": True}),
        422,
    )
    assert error["field"] == "tenant"
    missing = error_of(ops.post(f"{API}/links", json={"tenant": tenant, "read_only": True}), 422)
    assert missing["field"] == "connection"
    draft = unique("draft")
    ok(ops.post(f"{API}/connections", json=s3_body(draft, unique("draft"), tenant=tenant)), 201)
    error_of(
        ops.post(f"{API}/links", json={"tenant": tenant, "connection": draft, "read_only": True}),
        409,
    )

    viewer = read_only_link(ops, tenant, theirs)
    with server.client("") as browser:
        text = page_text(browser.get(f"/connect/{viewer['token']}", follow_redirects=True))
        assert theirs in text and "No transfers yet" in text
        assert mine not in text
        assert mine not in browser.get("/connect/delivery?after=x").text
    with server.client(viewer["token"]) as reader:
        assert ok(reader.get(f"{API}/recipient/transfers"))["items"] == []
        error_of(reader.get(f"{API}/transfers"), 403)


def test_read_only_links_expire_and_are_revoked(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    name = unique("ends")
    onboard(ops, aws, s3_body(name, unique("ends"), tenant="acme"))
    revoked, expiring = read_only_link(ops, "acme", name), read_only_link(ops, "acme", name)
    with server.client("") as browser:
        ok_page = browser.get(f"/connect/{revoked['token']}", follow_redirects=True)
        assert ok_page.status_code == 200
        ok(ops.post(f"{API}/links/{revoked['id']}/revoke"))
        gone = browser.get("/connect/delivery")
        assert gone.status_code == 410 and "was revoked" in gone.text
    with server.client(revoked["token"]) as reader:
        error_of(reader.get(f"{API}/recipient/transfers"), 410)

    past = datetime.now(UTC) - timedelta(seconds=1)
    server.execute(T.links.update().where(T.links.c.id == expiring["id"]).values(expires_at=past))
    with server.client("") as browser:
        gone = browser.get(f"/connect/{expiring['token']}")
        assert gone.status_code == 410 and "has expired" in gone.text
    with server.client(expiring["token"]) as reader:
        error_of(reader.get(f"{API}/recipient/transfers"), 410)


def test_a_spent_links_session_shows_the_connection_as_it_stands_once_paused_or_changed(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    """The wizard's entry sent a spent link's holder to the done page, which sent anything not
    active back to the entry: a redirect loop once the operator paused the connection, or sent
    it back to draft by changing its bucket."""
    link = new_link(ops, "acme")
    name, bucket = unique("standing"), unique("stn")
    with server.client("") as holder, server.client(link["token"]) as api:
        conn = activate_through_link(holder, api, link, aws, name, bucket)

        # Failing (still active): no next run, and the page says why, not "while active".
        server.state.connections.mark_failing(
            conn["id"], check="write_access", message="AccessDenied", now=datetime.now(UTC)
        )
        text = page_text(holder.get("/connect", follow_redirects=True))
        assert "Transfers are held" in text and "Status Active · failing" in text, text
        assert f"What to do: {recipient_fix('write_access')}" in text, text
        assert "none: transfers are held until the connection passes validation again" in text

        ok(ops.post(f"{API}/connections/{name}/pause"))
        for entry in ("/connect", "/connect/done", "/connect/delivery"):
            shown = holder.get(entry, follow_redirects=True)
            text = page_text(shown)
            assert "Your deliveries" in text and "Status Paused" in text, (entry, text)
            assert "none scheduled while the connection is paused" in text

        changed = ok(ops.patch(f"{API}/connections/{name}", json={"base_path": "moved"}))
        assert changed["status"] == "draft", changed
        shown = holder.get("/connect", follow_redirects=True)
        text = page_text(shown)
        assert "Your deliveries" in text and "Status Draft" in text, text
        # A spent link never opens the wizard's steps again.
        assert holder.post("/connect/validate", data={"csrf_token": "x"}).status_code == 410
