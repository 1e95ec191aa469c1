"""Import connections through the REST API and the pages, against a real server (SQLite and
PostgreSQL state): a run over the customer's bucket rejects a bad file; the operator lists the
rejected files with their first problems and retries one (API and page, with its CSRF token);
the recipient reads their own connection's rejected files through the link and on their page,
and can retry nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from byob.demo.emulator import CustomerAccount, LocalAws
from byob.web.schemas import RejectedFiles
from tests.integration.api.conftest import Server
from tests.integration.api.helpers import (
    API,
    customer_sets_up,
    error_of,
    ok,
    s3_body,
    unique,
    wait_for_transfer,
)
from tests.integration.api.test_delivery_page import page_text
from tests.integration.api.test_links import new_link, recipient_body
from tests.support import wait_for

pytestmark = pytest.mark.integration

GOOD = b"account,quantity\na,1\nb,2\n"
BAD = b"account,quantity\nc,3\nd,lots\n"


def import_body(name: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return (
        s3_body(name, bucket, direction="import", base_path="drop", **{"import": "usage_events"})
        | extra
    )


def drop_files(customer: CustomerAccount, bucket: str) -> None:
    s3 = customer.client("s3")
    s3.put_object(Bucket=bucket, Key="drop/2026/01-good.csv", Body=GOOD)
    s3.put_object(Bucket=bucket, Key="drop/2026/02-bad.csv", Body=BAD)


def run_once(ops: httpx.Client, name: str, before: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Trigger a run and wait for it; ``before``: the IDs of earlier runs (a queued run shows
    in the list beside them)."""
    triggered = ok(ops.post(f"{API}/transfers", json={"connection": name}), 202)
    if triggered["transfers"]:
        (transfer_id,) = (t["id"] for t in triggered["transfers"])
    else:

        def new_run() -> str | None:
            listed = ok(ops.get(f"{API}/transfers", params={"connection": name}))["items"]
            fresh = [t["id"] for t in listed if t["id"] not in before]
            return fresh[0] if fresh else None

        transfer_id = wait_for(new_run, timeout=120, what="the queued run")
    return wait_for_transfer(ops, transfer_id)


def validate_and_activate(client: httpx.Client, prefix: str) -> dict[str, Any]:
    validation = ok(client.post(f"{API}{prefix}/validate"))
    names = [c["name"] for c in validation["checks"]]
    assert names[-3:] == ["list_base_path", "read_object", "write_refused"], names
    assert validation["passed"], validation
    return dict(ok(client.post(f"{API}{prefix}/activate")))


def assert_rejected_bad_file(rejected: dict[str, Any]) -> None:
    RejectedFiles.model_validate(rejected)  # exactly the documented shape
    assert rejected["total"] == 1
    (item,) = rejected["items"]
    assert item["key"] == "drop/2026/02-bad.csv" and item["size"] == len(BAD)
    first = item["problems"][0]
    assert (first["line"], first["column"], first["value"]) == (3, "quantity", "lots"), item
    assert first["reason"] and item["message"] == first["message"]


def test_operator_lists_rejected_files_and_retries_one(
    server: Server, ops: httpx.Client, aws: LocalAws
) -> None:
    name, bucket = unique("usage"), unique("drop")
    conn = ok(ops.post(f"{API}/connections", json=import_body(name, bucket)), 201)
    assert (conn["direction"], conn["import"]) == ("import", "usage_events")
    policies = ok(ops.get(f"{API}/connections/{name}/policies"))
    customer = customer_sets_up(aws, policies, bucket)
    drop_files(customer, bucket)
    assert validate_and_activate(ops, f"/connections/{name}")["status"] == "active"
    assert ok(ops.get(f"{API}/connections/{name}/imports/rejected")) == {"items": [], "total": 0}

    done = run_once(ops, name)
    assert done["status"] == "succeeded" and done["type"] == "import", done
    assert done["import_counts"] == {
        "seen": 2,
        "imported": 1,
        "rejected": 1,
        "skipped": 0,
        "already": 0,
    }
    assert_rejected_bad_file(ok(ops.get(f"{API}/connections/{name}/imports/rejected")))
    limited = ok(ops.get(f"{API}/connections/{name}/imports/rejected", params={"limit": 1}))
    assert limited["total"] == 1
    error_of(ops.get(f"{API}/connections/{name}/imports/rejected", params={"limit": 0}), 422)

    retried = ok(
        ops.post(f"{API}/connections/{name}/imports/retry", json={"key": "drop/2026/02-bad.csv"})
    )
    assert retried == {"key": "drop/2026/02-bad.csv", "cleared": 1}
    assert ok(ops.get(f"{API}/connections/{name}/imports/rejected"))["total"] == 0
    again = error_of(
        ops.post(f"{API}/connections/{name}/imports/retry", json={"key": "drop/2026/02-bad.csv"}),
        404,
    )
    assert again["field"] == "key"
    assert error_of(ops.post(f"{API}/connections/{name}/imports/retry", json={}), 422)
    assert error_of(
        ops.post(f"{API}/connections/{name}/imports/retry", json={"key": "k", "x": 1}), 422
    )
    error_of(ops.get(f"{API}/connections/{unique('nope')}/imports/rejected"), 404)

    # The retried file is tried again by the next run (and rejected again: it is unchanged).
    second = run_once(ops, name, before=frozenset({done["id"]}))
    assert second["import_counts"]["rejected"] == 1, second
    assert ok(ops.get(f"{API}/connections/{name}/imports/rejected"))["total"] == 1


def test_rejected_files_are_for_import_connections_and_operators(
    server: Server, ops: httpx.Client
) -> None:
    name = unique("export")
    ok(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 201)
    error = error_of(ops.get(f"{API}/connections/{name}/imports/rejected"), 409)
    assert "only import connections reject files" in error["message"]
    error_of(ops.post(f"{API}/connections/{name}/imports/retry", json={"key": "k"}), 409)

    link = new_link(ops, "acme")
    with server.client(link["token"]) as recipient:
        error_of(recipient.get(f"{API}/connections/{name}/imports/rejected"), 403)
        error_of(recipient.post(f"{API}/connections/{name}/imports/retry", json={"key": "k"}), 403)
        # The link has no connection yet: nothing to list.
        error_of(recipient.get(f"{API}/recipient/connection/imports/rejected"), 404)
    error_of(ops.get(f"{API}/recipient/connection/imports/rejected"), 403)


def test_the_recipient_reads_their_rejected_files_through_the_link_and_on_their_page(
    server: Server, ops: httpx.Client, aws: LocalAws
) -> None:
    link = new_link(ops, "acme")
    name, bucket = unique("theirs"), unique("drop")
    body = recipient_body(name, bucket, direction="import", base_path="drop") | {
        "import": "usage_events"
    }
    with server.client("") as holder, server.client(link["token"]) as api:
        assert holder.get(f"/connect/{link['token']}").status_code in (200, 303)
        created = ok(api.post(f"{API}/recipient/connection", json=body), 201)
        assert (created["direction"], created["import"]) == ("import", "usage_events")
        customer = customer_sets_up(
            aws, ok(api.get(f"{API}/recipient/connection/policies")), bucket
        )
        drop_files(customer, bucket)
        validate_and_activate(api, "/recipient/connection")
        run_once(ops, name)

        # The link is spent, and still reads its own connection's rejected files.
        assert_rejected_bad_file(ok(api.get(f"{API}/recipient/connection/imports/rejected")))
        error_of(api.post(f"{API}/connections/{name}/imports/retry", json={"key": "k"}))

        text = page_text(holder.get("/connect/delivery"))
        assert "Your imports" in text and "import: your vendor reads files" in text
        assert f"s3://{bucket}/drop/" in text
        assert re.search(r"Succeeded .*? 2 1 1 0 2 ", text), text  # seen, imported, rejected…
        assert "Rejected files" in text and "drop/2026/02-bad.csv" in text
        assert "3 quantity lots" in text  # line, column, value of the first problem
        assert "Retry" not in text  # retrying is the vendor's
        assert "account text" in text and "quantity integer" in text  # what to put there


@contextmanager
def operator_pages(server: Server) -> Iterator[httpx.Client]:
    """A client signed in to the operator's pages with the server's operator key."""
    with server.client("") as client:
        login = client.get("/login")
        signed = client.post(
            "/login",
            data={"api_key": server.token, "csrf_token": csrf_of(login.text)},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text[:2000]
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def test_the_operator_page_lists_rejected_files_and_retries_with_its_csrf_token(
    server: Server, ops: httpx.Client, aws: LocalAws
) -> None:
    name, bucket = unique("paged"), unique("drop")
    ok(ops.post(f"{API}/connections", json=import_body(name, bucket)), 201)
    customer = customer_sets_up(aws, ok(ops.get(f"{API}/connections/{name}/policies")), bucket)
    drop_files(customer, bucket)
    validate_and_activate(ops, f"/connections/{name}")
    run_once(ops, name)

    with operator_pages(server) as pages:
        shown = pages.get(f"/connections/{name}")
        text = page_text(shown)
        assert "Direction import: byob reads the files" in text and "Import usage_events" in text
        assert "Last runs" in text and re.search(r"Succeeded .*? 2 1 1 0 2 ", text), text
        assert "Rejected files" in text and "drop/2026/02-bad.csv" in text
        assert "3 quantity lots" in text
        # A retry without the page's token is refused; with it, the file is tried again.
        refused = pages.post(
            f"/connections/{name}/imports/retry", data={"key": "drop/2026/02-bad.csv"}
        )
        assert refused.status_code == 403
        assert ok(ops.get(f"{API}/connections/{name}/imports/rejected"))["total"] == 1
        retried = pages.post(
            f"/connections/{name}/imports/retry",
            data={"key": "drop/2026/02-bad.csv", "csrf_token": csrf_of(shown.text)},
            follow_redirects=True,
        )
        text = page_text(retried)
        assert "The file is no longer rejected" in text and "No rejected files." in text
        assert ok(ops.get(f"{API}/connections/{name}/imports/rejected"))["total"] == 0
        missing = pages.post(
            f"/connections/{name}/imports/retry",
            data={"key": "drop/2026/02-bad.csv", "csrf_token": csrf_of(shown.text)},
            follow_redirects=True,
        )
        assert missing.status_code == 409 and "has no rejected file" in missing.text


def test_the_api_documents_the_import_routes(anonymous: httpx.Client) -> None:
    spec = ok(anonymous.get("/openapi.json"))
    paths = spec["paths"]
    rejected = paths[f"{API}/connections/{{name}}/imports/rejected"]["get"]
    ref = rejected["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/RejectedFiles")
    retry = paths[f"{API}/connections/{{name}}/imports/retry"]["post"]
    assert retry["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ImportRetry"
    )
    assert f"{API}/recipient/connection/imports/rejected" in paths
    problem = spec["components"]["schemas"]["RowProblemPublic"]["properties"]
    assert set(problem) == {"line", "column", "value", "reason", "message"}
