"""The operator's REST API, over HTTP against a real `byob serve` process, with a SQLite and
with a PostgreSQL state store: create, list, policies, validate, activate, transfer, pause,
update back to draft, delete; API keys; errors as JSON with the right status codes; audit."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from byob.web.schemas import ConnectionPublic
from tests.integration.api.conftest import Server
from tests.integration.api.helpers import (
    ACME_IDS,
    API,
    customer_sets_up,
    delivered_ids,
    error_of,
    ok,
    onboard,
    s3_body,
    transfer_ids,
    unique,
    wait_for_transfer,
)
from tests.support import CUSTOMER

pytestmark = pytest.mark.integration

CHECKS = [
    "assume_role",
    "external_id_required",
    "bucket_region",
    "write_test_object",
    "delete_test_object",
]


def documented(view: dict[str, Any]) -> dict[str, Any]:
    """A connection as its documented model has it: the list and the one-connection answers
    are sent without a pass through the model (byob.web.view_json), so they must already be
    exactly this, key for key and in the same formats."""
    return ConnectionPublic.model_validate(view).model_dump(mode="json", by_alias=True)


def listed(ops: httpx.Client, tenant: str, name: str) -> dict[str, Any]:
    """The connection as the list shows it, however many pages the tenant's list has."""
    after = None
    while True:
        page = ok(ops.get(f"{API}/connections", params={"tenant": tenant, "after": after or ""}))
        found = [c for c in page["items"] if c["name"] == name]
        if found or page["next"] is None:
            (connection,) = found
            return dict(connection)
        after = page["next"]


# -- creating: every bad field named, nothing created ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "12345"),
        ("account_id", "12345678901a"),
        ("bucket", "Bad_Bucket"),
        ("bucket", "ab"),
        ("region", "mars-north-1"),
        ("base_path", "/exports"),
        ("base_path", "exports/../other"),
        ("name", "-starts-with-dash"),
        ("type", "ftp"),
        ("tenant", ""),
        ("tenant", "acme "),
    ],
)
def test_create_refuses_a_bad_field_by_name(ops: httpx.Client, field: str, value: str) -> None:
    name = unique("bad")
    body = s3_body(name, unique("bkt")) | {field: value}
    error = error_of(ops.post(f"{API}/connections", json=body), 422)
    assert error["field"] == field
    assert error["code"] == "invalid_field"
    error_of(ops.get(f"{API}/connections/{name}"), 404)  # nothing was created


def test_create_warns_of_a_tenant_without_rows(ops: httpx.Client) -> None:
    created = ok(
        ops.post(
            f"{API}/connections", json=s3_body(unique("nobody"), unique("bkt"), tenant="nobody")
        ),
        201,
    )
    assert created["warnings"] == [
        "tenant 'nobody' has no rows in any model it receives (invoices): its transfers deliver nothing "
        "until it has; check that it is the tenant column's exact value"
    ]


def test_create_refuses_unknown_and_missing_fields(ops: httpx.Client) -> None:
    name = unique("strict")
    error = error_of(
        ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"), colour="red")), 422
    )
    assert error["field"] == "colour" and "unknown field" in error["message"]
    missing = s3_body(name, unique("bkt"))
    del missing["bucket"]
    assert error_of(ops.post(f"{API}/connections", json=missing), 422)["field"] == "bucket"
    error_of(ops.post(f"{API}/connections", json=["not", "an", "object"]), 422)
    error_of(
        ops.post(
            f"{API}/connections", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )
    # A role ARN in another account than the connection's is refused, naming the field.
    other_account = s3_body(name, unique("bkt"), role_arn="arn:aws:iam::999999999999:role/r")
    assert error_of(ops.post(f"{API}/connections", json=other_account), 422)["field"] == "role_arn"
    error_of(ops.get(f"{API}/connections/{name}"), 404)


def test_the_frequency_is_chosen_at_creation(ops: httpx.Client) -> None:
    name = unique("hourly")
    created = ok(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 201)
    assert created["frequency_minutes"] == 1440  # daily unless chosen
    body = s3_body(unique("hourly"), unique("bkt"), frequency_minutes=60)
    assert ok(ops.post(f"{API}/connections", json=body), 201)["frequency_minutes"] == 60
    body = s3_body(unique("hourly"), unique("bkt"), frequency_minutes=30)
    error = error_of(ops.post(f"{API}/connections", json=body), 422)
    assert error["field"] == "frequency_minutes"
    assert error["message"].startswith("frequency must be one of these minutes: 15 (every 15")


def test_the_models_a_connection_receives_are_chosen_and_changed(ops: httpx.Client) -> None:
    name = unique("picked")
    created = ok(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 201)
    assert created["models"] is None  # every offered model
    body = s3_body(unique("picked"), unique("bkt"), models=["nope"])
    error = error_of(ops.post(f"{API}/connections", json=body), 422)
    assert error["field"] == "models" and "choose among: invoices" in error["message"]
    changed = ok(ops.patch(f"{API}/connections/{name}", json={"models": ["invoices"]}))
    assert changed["models"] == ["invoices"] and changed["status"] == created["status"]
    back = ok(ops.patch(f"{API}/connections/{name}", json={"models": ["*"]}))
    assert back["models"] is None


def test_duplicate_name_is_a_conflict(ops: httpx.Client) -> None:
    name = unique("dup")
    ok(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 201)
    error = error_of(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 409)
    assert error["code"] == "conflict" and error["field"] == "name"
    # Renaming another connection onto the name is the same conflict.
    other = ok(ops.post(f"{API}/connections", json=s3_body(unique("dup"), unique("bkt"))), 201)
    error_of(ops.patch(f"{API}/connections/{other['name']}", json={"name": name}), 409)


# -- listing -----------------------------------------------------------------------------------


def test_list_pages_by_cursor_forward_and_back(ops: httpx.Client) -> None:
    tenant = unique("paged")
    names = [unique("page") for _ in range(7)]
    for name in names:  # created in this order: the list is oldest first
        ok(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"), tenant=tenant)), 201)

    def page(**params: Any) -> dict[str, Any]:
        found: dict[str, Any] = ok(
            ops.get(f"{API}/connections", params={"tenant": tenant, "limit": 3, **params})
        )
        assert all(item["tenant"] == tenant for item in found["items"])
        assert found["total"] == len(names)
        return found

    first = page()
    assert [i["name"] for i in first["items"]] == names[:3] and first["previous"] is None
    second = page(after=first["next"])
    assert [i["name"] for i in second["items"]] == names[3:6]
    third = page(after=second["next"])
    assert [i["name"] for i in third["items"]] == names[6:] and third["next"] is None
    # Back from the last page, to the first page again.
    assert [i["name"] for i in page(before=third["previous"])["items"]] == names[3:6]
    back = page(before=second["previous"])
    assert [i["name"] for i in back["items"]] == names[:3] and back["previous"] is None
    # A connection created while paging turns up at the end, and nothing twice.
    late = unique("late")
    ok(ops.post(f"{API}/connections", json=s3_body(late, unique("bkt"), tenant=tenant)), 201)
    names.append(late)
    assert [i["name"] for i in page(after=second["next"])["items"]] == [names[6], late]


def test_list_walks_every_tenant_and_refuses_bad_paging(ops: httpx.Client) -> None:
    mine = {unique("every") for _ in range(3)}
    for name in mine:
        ok(ops.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 201)
    everything: list[str] = []
    after = None
    while True:
        found = ok(ops.get(f"{API}/connections", params={"limit": 500, "after": after or ""}))
        everything += [item["id"] for item in found["items"]]
        if found["next"] is None:
            break
        after = found["next"]
    assert len(everything) == len(set(everything)) == found["total"]
    error_of(ops.get(f"{API}/connections", params={"limit": 0}), 422)
    error_of(ops.get(f"{API}/connections", params={"limit": 501}), 422)
    assert (
        error_of(ops.get(f"{API}/connections", params={"limit": "many"}), 422)["field"] == "limit"
    )
    bad = error_of(ops.get(f"{API}/connections", params={"after": "not-a-cursor"}), 422)
    assert bad["field"] == "after" and "cursor" in bad["message"]
    both = ops.get(f"{API}/connections", params={"after": "x", "before": "y"})
    assert error_of(both, 422)["field"] in {"after", "before"}


# -- the whole operator flow -------------------------------------------------------------------


def test_operator_flow_from_create_to_delete(server: Server, ops: httpx.Client, aws: Any) -> None:
    name, bucket = unique("acme-s3"), unique("acme-data")
    created = ok(ops.post(f"{API}/connections", json=s3_body(name, bucket)), 201)
    assert created.pop("warnings") == []  # the tenant has rows
    assert created["status"] == "draft" and created["tenant"] == "acme"
    assert created["auth"] == "role" and created["validation"] is None
    assert re.fullmatch(r"[A-Za-z0-9]{32,}", created["external_id"])
    assert created["role_arn"] == f"arn:aws:iam::{CUSTOMER}:role/{created['role_name']}"
    assert created["location"] == f"s3://{bucket}/exports/billing"
    assert ok(ops.get(f"{API}/connections/{name}")) == created
    assert ok(ops.get(f"{API}/connections/{created['id']}"))["name"] == name  # by id too

    policies = ok(ops.get(f"{API}/connections/{name}/policies"))
    assert policies["external_id"] == created["external_id"]
    assert policies["role_name"] == created["role_name"]
    (trust,) = policies["trust_policy"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole" and trust["Effect"] == "Allow"
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": created["external_id"]}}
    (grant,) = policies["permissions_policy"]["Statement"]
    assert grant["Resource"] == f"arn:aws:s3:::{bucket}/exports/billing/*"
    assert sorted(grant["Action"]) == ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"]

    # Nothing can be activated or transferred before a passing validation.
    error_of(ops.post(f"{API}/connections/{name}/activate"), 409)
    error_of(ops.post(f"{API}/transfers", json={"connection": name}), 409)
    error_of(ops.post(f"{API}/connections/{name}/pause"), 409)  # not active

    failing = ok(ops.post(f"{API}/connections/{name}/validate"))
    assert failing["passed"] is False and failing["current"] is True
    assert [c["name"] for c in failing["checks"]] == CHECKS
    outcomes = {c["name"]: c for c in failing["checks"]}
    assert outcomes["bucket_region"]["outcome"] == "failed"
    assert outcomes["bucket_region"]["aws_code"] == "NoSuchBucket"
    assert bucket in outcomes["bucket_region"]["message"]
    assert outcomes["write_test_object"]["outcome"] == "skipped"
    error_of(ops.post(f"{API}/connections/{name}/activate"), 409)
    assert ok(ops.get(f"{API}/connections/{name}"))["validation"]["passed"] is False

    customer = customer_sets_up(aws, policies, bucket)
    passing = ok(ops.post(f"{API}/connections/{name}/validate"))
    assert passing["passed"] is True, passing
    assert {c["outcome"] for c in passing["checks"]} <= {"passed", "warning"}
    active = ok(ops.post(f"{API}/connections/{name}/activate"))
    assert active["status"] == "active" and active["validation"]["current"] is True

    triggered = ok(ops.post(f"{API}/transfers", json={"connection": name}), 202)
    assert triggered["busy"] == []
    (transfer_id,) = transfer_ids(ops, name, triggered)
    done = wait_for_transfer(ops, transfer_id)
    assert done["model"] == "invoices" and done["connection_id"] == created["id"]
    assert done["status"] == "succeeded", done
    assert done["rows"] == len(ACME_IDS) and done["files"] >= 1
    assert done["manifest"].startswith("exports/billing/_manifests/invoices/")
    assert sorted(delivered_ids(customer, bucket, "exports/billing/invoices/")) == sorted(ACME_IDS)

    history = ok(ops.get(f"{API}/transfers", params={"connection": name}))
    assert [t["id"] for t in history["items"]] == [transfer_id]
    assert history["next"] is None and history["previous"] is None and history["total"] == 1
    shown = ok(ops.get(f"{API}/connections/{name}"))
    assert shown["last_transfer"]["id"] == transfer_id and shown["validation"]["passed"]
    assert shown == documented(shown) == listed(ops, "acme", name)
    error_of(ops.get(f"{API}/transfers", params={"connection": unique("nope")}), 404)
    error_of(ops.get(f"{API}/transfers/{unique('nope')}"), 404)

    paused = ok(ops.post(f"{API}/connections/{name}/pause"))
    assert paused["status"] == "paused"
    error_of(ops.post(f"{API}/transfers", json={"connection": name}), 409)
    assert ok(ops.post(f"{API}/connections/{name}/activate"))["status"] == "active"  # resume

    moved = ok(ops.patch(f"{API}/connections/{name}", json={"bucket": unique("elsewhere")}))
    assert moved["status"] == "draft"
    assert moved["validation"]["current"] is False
    assert (
        error_of(ops.post(f"{API}/transfers", json={"connection": name}), 409)["code"] == "conflict"
    )
    error_of(ops.post(f"{API}/connections/{name}/activate"), 409)  # the old validation is stale

    assert ops.delete(f"{API}/connections/{name}").status_code == 204
    error_of(ops.get(f"{API}/connections/{name}"), 404)
    error_of(ops.delete(f"{API}/connections/{name}"), 404)
    error_of(ops.post(f"{API}/connections/{name}/validate"), 404)

    actions = [
        (e["action"], e["actor"]) for e in server.state.audit.recent(connection_id=created["id"])
    ]
    for action in (
        "connection.create",
        "connection.validate",
        "connection.activate",
        "connection.pause",
        "connection.update",
        "connection.delete",
    ):
        assert (action, "operator:ops") in actions, actions
    triggers = [
        e for e in server.state.audit.recent(limit=1000) if e["action"] == "transfer.trigger"
    ]
    assert any(
        e["changes"]["connection"] == name and e["actor"] == "operator:ops" for e in triggers
    )


@pytest.mark.parametrize(
    "change",
    [
        {"bucket": "another-bucket-1"},
        {"region": "us-west-2"},
        {"base_path": "exports/v2"},
        {"type": "athena", "schema": "sales", "database": "sales_results"},
        {
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        },
        {"role_arn": f"arn:aws:iam::{CUSTOMER}:role/their-own-role"},
    ],
    ids=["bucket", "region", "base_path", "type", "auth-hmac", "role_arn"],
)
def test_changing_where_or_how_it_writes_returns_to_draft(
    server: Server, ops: httpx.Client, aws: Any, change: dict[str, Any]
) -> None:
    active, _ = onboard(ops, aws, s3_body(unique("redraft"), unique("bkt")))
    name = active["name"]
    # Changes that do not touch the destination keep it active, and are audited too.
    assert (
        ok(ops.patch(f"{API}/connections/{name}", json={"frequency_minutes": 60}))["status"]
        == "active"
    )
    # Bad input is refused, naming the field, and changes nothing.
    assert (
        error_of(ops.patch(f"{API}/connections/{name}", json={"region": "nowhere"}), 422)["field"]
        == "region"
    )
    error_of(ops.patch(f"{API}/connections/{name}", json={"external_id": "mine"}), 422)
    assert ok(ops.get(f"{API}/connections/{name}"))["status"] == "active"

    changed = ok(ops.patch(f"{API}/connections/{name}", json=change))
    assert changed["status"] == "draft", changed
    for field, value in change.items():
        if field != "secret_access_key":
            assert changed[field] == value, field  # "schema" too
    # One shape, whichever route answers: the update (through its response model), the one
    # connection and the list (straight from the view).
    shown = ok(ops.get(f"{API}/connections/{name}"))
    changed.pop("policy_changed")  # the update's own answer says what to paste again
    assert shown == changed == documented(shown) == listed(ops, "acme", name)
    assert changed["external_id"] in ("", active["external_id"])  # never edited
    error_of(ops.post(f"{API}/transfers", json={"connection": name}), 409)
    updates = [
        e
        for e in server.state.audit.recent(connection_id=active["id"])
        if e["action"] == "connection.update"
    ]
    assert len(updates) == 2 and {e["actor"] for e in updates} == {"operator:ops"}
    assert updates[0]["changes"]["status"] == ["active", "draft"]
    assert updates[1]["changes"] == {"frequency_minutes": [1440, 60]}


# -- API keys ----------------------------------------------------------------------------------


def test_operator_endpoints_need_a_live_api_key(server: Server, anonymous: httpx.Client) -> None:
    for response in (
        anonymous.get(f"{API}/connections"),
        anonymous.get(f"{API}/models"),
        anonymous.post(f"{API}/connections", json=s3_body(unique("anon"), unique("bkt"))),
        anonymous.post(f"{API}/links", json={"tenant": "acme"}),
    ):
        error = error_of(response, 401)
        assert error["code"] == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"

    wrong_tokens = [
        "byob_key_" + "A" * 43,
        server.token[:-1] + ("A" if server.token[-1] != "A" else "B"),
        "nonsense",
        server.token.removeprefix("byob_key_"),
    ]
    for token in wrong_tokens:
        with server.client(token) as client:
            error_of(client.get(f"{API}/connections"), 401)
    for header in (f"Basic {server.token}", server.token, "Bearer", f"Token {server.token}"):
        error_of(anonymous.get(f"{API}/connections", headers={"Authorization": header}), 401)

    key_name = unique("temp")
    token = server.api_key(key_name)
    assert token.startswith("byob_key_") and token != server.token
    with server.client(token) as client:
        ok(client.get(f"{API}/connections", params={"limit": 1}))
        name = unique("by-temp")
        ok(client.post(f"{API}/connections", json=s3_body(name, unique("bkt"))), 201)
        revoked = server.cli("api-keys", "revoke", key_name, "--json")
        assert revoked.returncode == 0, revoked.stderr
        error_of(client.get(f"{API}/connections"), 401)
    # Who did what is recorded under the key's name; the key itself is stored only hashed.
    with server.client() as client:
        conn = ok(client.get(f"{API}/connections/{name}"))
    (entry,) = server.state.audit.recent(connection_id=conn["id"])
    assert entry["actor"] == f"operator:{key_name}"
    assert token not in server.state_text()

    again = server.cli("api-keys", "revoke", key_name)
    assert again.returncode == 1 and "no live API key" in again.stderr
    listed = server.cli("api-keys", "list", "--json")
    assert token not in listed.stdout and key_name in listed.stdout


# -- models ------------------------------------------------------------------------------------


def test_models_are_listed(ops: httpx.Client) -> None:
    (model,) = ok(ops.get(f"{API}/models"))
    assert model["name"] == "invoices" and model["table"] == "invoices"
    assert model["tenant_column"] == "tenant_id" and model["cursor_column"] == "updated_at"
    assert model["primary_key"] == ["id"]
    columns = {c["name"]: c["type"] for c in model["columns"]}
    assert columns["amount"] == "decimal(18,2)" and set(columns) == {
        "id",
        "tenant_id",
        "amount",
        "updated_at",
    }


def test_unknown_routes_and_methods_answer_json(ops: httpx.Client) -> None:
    error_of(ops.get(f"{API}/nothing-here"), 404)
    error_of(ops.put(f"{API}/connections"), 405)
    assert ok(ops.get("/openapi.json"))["info"]["title"] == "byob"
