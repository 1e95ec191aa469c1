"""The transfers API over HTTP against a real `byob serve` (SQLite and PostgreSQL state): the
list across connections with its filters and cursor pages, cancel, and a link holder's view of
its own connection's transfers, never another's.

Most transfers here are written straight into the state store, each status and creation time
chosen, so lists and filters have known answers; their connections are drafts no worker runs.
One recipient test runs a real transfer end to end."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from byob.domain.paging import Cursor
from byob.store import tables as T
from tests.integration.api.conftest import Server
from tests.integration.api.helpers import (
    API,
    customer_sets_up,
    error_of,
    ok,
    s3_body,
    transfer_ids,
    unique,
    wait_for_transfer,
)
from tests.integration.api.test_links import new_link, recipient_body

pytestmark = pytest.mark.integration

STATUSES = ["planned", "running", "succeeded", "failed", "cancelled"]


def a_base_time() -> datetime:
    """Creation times of this test's transfers start here: later than any real transfer, and
    apart from another test's."""
    return datetime(2700, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(100_000))


def draft(ops: httpx.Client, tenant: str) -> dict[str, Any]:
    conn = ok(
        ops.post(f"{API}/connections", json=s3_body(unique("xfer"), unique("b"), tenant=tenant)),
        201,
    )
    assert conn["status"] == "draft"
    return dict(conn)


def seed(
    server: Server,
    connection_id: str,
    status: str,
    created_at: datetime,
    *,
    model: str = "invoices",
    attempts: int | None = None,
) -> str:
    """A transfer as the engine records one, in the given status, created at that time."""
    transfer_id = uuid.uuid4().hex
    finished = status in ("succeeded", "failed", "cancelled")
    server.execute(
        T.transfers.insert().values(
            id=transfer_id,
            connection_id=connection_id,
            model=model,
            type="incremental",
            status=status,
            started_at=created_at,
            window_low=None,
            window_high=created_at,
            rows=0,
            bytes=0,
            files=0,
            attempts=(0 if status == "planned" else 1) if attempts is None else attempts,
            error="SlowDown" if status == "failed" else None,
            created_at=created_at,
            finished_at=created_at if finished else None,
        )
    )
    return transfer_id


def ids(page: dict[str, Any]) -> list[str]:
    return [t["id"] for t in page["items"]]


def listing(client: httpx.Client, path: str = "/transfers", **params: Any) -> dict[str, Any]:
    page = ok(client.get(f"{API}{path}", params=params))
    assert set(page) == {"items", "total", "next", "previous"}
    return dict(page)


def walk(client: httpx.Client, path: str, **params: Any) -> tuple[list[str], dict[str, Any]]:
    """Every page forwards (checking each total), then back from the last by ``previous``;
    the IDs in order, and the last page."""
    seen: list[list[str]] = []
    page = listing(client, path, **params)
    total = page["total"]
    assert page["previous"] is None
    while True:
        assert page["total"] == total
        seen.append(ids(page))
        if page["next"] is None:
            break
        page = listing(client, path, **params, after=page["next"])
    last, backwards = page, []
    while page["previous"] is not None:
        page = listing(client, path, **params, before=page["previous"])
        assert page["total"] == total
        backwards.insert(0, ids(page))
    assert backwards == seen[:-1]  # the same pages, reached the other way
    return [i for chunk in seen for i in chunk], last


# -- the list across connections -----------------------------------------------------------------


def test_transfers_list_across_connections_with_filters_and_pages(
    server: Server, ops: httpx.Client
) -> None:
    mine, theirs = unique("tenant"), unique("tenant")
    first, second, other = draft(ops, mine), draft(ops, mine), draft(ops, theirs)
    base = a_base_time()
    at = [base + timedelta(minutes=m) for m in range(9)]
    made = {
        "first": [
            seed(server, first["id"], s, at[i])
            for i, s in [(1, "succeeded"), (2, "failed"), (3, "planned")]
        ],
        "second": [
            seed(server, second["id"], s, at[i])
            for i, s in [(4, "succeeded"), (5, "running"), (6, "cancelled")]
        ],
        "other": [
            seed(server, other["id"], s, at[i]) for i, s in [(7, "succeeded"), (8, "failed")]
        ],
    }
    newest_mine = list(reversed(made["first"] + made["second"]))

    # Across every connection, newest first: both tenants' transfers, in creation order.
    everyone = listing(ops, limit=500, since=base.isoformat())
    ours = set(newest_mine + made["other"])
    assert [i for i in ids(everyone) if i in ours] == list(
        reversed(made["first"] + made["second"] + made["other"])
    )
    assert everyone["total"] >= len(ours)

    # By tenant: its connections only, whole and in pages of two either way.
    by_tenant = listing(ops, tenant=mine)
    assert ids(by_tenant) == newest_mine and by_tenant["total"] == 6
    assert by_tenant["next"] is None and by_tenant["previous"] is None
    walked, last = walk(ops, "/transfers", tenant=mine, limit=2)
    assert walked == newest_mine and ids(last) == newest_mine[4:]
    assert listing(ops, tenant=unique("nobody")) == {
        "items": [],
        "total": 0,
        "next": None,
        "previous": None,
    }

    # By connection: a name, an ID, or tenant/name, as before; with a tenant, both must hold.
    for named in (second["name"], second["id"], f"{mine}/{second['name']}"):
        assert ids(listing(ops, connection=named)) == list(reversed(made["second"]))
    assert listing(ops, connection=other["id"], tenant=mine)["total"] == 0
    assert ids(listing(ops, connection=other["id"], tenant=theirs)) == list(reversed(made["other"]))

    # By status: the parameter repeated for several.
    assert ids(listing(ops, tenant=mine, status="failed")) == [made["first"][1]]
    several = listing(ops, tenant=mine, status=["planned", "failed", "running"])
    assert ids(several) == [made["second"][1], made["first"][2], made["first"][1]]
    assert several["total"] == 3
    walked, _ = walk(ops, "/transfers", tenant=mine, status=["succeeded", "cancelled"], limit=1)
    assert walked == [made["second"][2], made["second"][0], made["first"][0]]
    running = ids(listing(ops, status="running", since=base.isoformat(), limit=500))
    assert made["second"][1] in running and not set(running) & (ours - {made["second"][1]})

    # Since: created at or after, in any ISO 8601 form (UTC unless the offset says otherwise).
    since_4 = [made["second"][2], made["second"][1], made["second"][0]]
    for moment in (
        at[4].isoformat(),
        at[4].strftime("%Y-%m-%dT%H:%M:%SZ"),
        at[4].replace(tzinfo=None).isoformat(),
        (at[4] + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00"),
    ):
        assert ids(listing(ops, tenant=mine, since=moment)) == since_4, moment
    assert ids(listing(ops, tenant=mine, since=base.date().isoformat())) == newest_mine
    assert ids(listing(ops, tenant=mine, since=at[4].isoformat(), status="succeeded")) == [
        made["second"][0]
    ]
    assert listing(ops, tenant=mine, since=(at[8] + timedelta(days=1)).isoformat())["total"] == 0


def test_transfers_list_refuses_bad_filters_and_cursors_naming_the_field(
    server: Server, ops: httpx.Client
) -> None:
    conn = draft(ops, unique("tenant"))
    base = a_base_time()
    for minute in range(3):
        seed(server, conn["id"], "succeeded", base + timedelta(minutes=minute))
    page = listing(ops, connection=conn["id"], limit=1)
    forged = Cursor(created_at=base, id="not-an-id").encode()
    for params, field in [
        ({"status": "done"}, "status"),
        ({"status": ["failed", "Failed"]}, "status"),
        ({"status": ""}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),  # before year 1 in UTC
        ({"after": "not-a-cursor"}, "after"),
        ({"after": forged}, "after"),
        ({"before": "bm90IGEgY3Vyc29y"}, "before"),
        ({"after": page["next"], "before": page["next"]}, "before"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ]:
        error = error_of(
            ops.get(f"{API}/transfers", params={"connection": conn["id"], **params}), 422
        )
        assert error["field"] == field, (params, error)
        assert error["code"] == "invalid_field"
    status_error = error_of(ops.get(f"{API}/transfers", params={"status": "done"}), 422)
    assert all(s in status_error["message"] for s in STATUSES), status_error
    # A connection named in a query or a body that does not exist: 404, naming the field
    # the caller used (as POST /transfers and POST /links say it too).
    missing = unique("nope")
    for answer in (
        ops.get(f"{API}/transfers", params={"connection": missing}),
        ops.post(f"{API}/transfers", json={"connection": missing}),
        ops.post(f"{API}/links", json={"tenant": "acme", "connection": missing}),
    ):
        assert error_of(answer, 404)["field"] == "connection", answer.text

    # The OpenAPI description says how to give several statuses, and which there are.
    document = ok(ops.get("/openapi.json"))
    parameters = {p["name"]: p for p in document["paths"][f"{API}/transfers"]["get"]["parameters"]}
    assert set(parameters) >= {
        "connection",
        "tenant",
        "status",
        "since",
        "limit",
        "after",
        "before",
    }
    assert parameters["status"]["schema"]["items"]["enum"] == STATUSES
    assert "repeat" in parameters["status"]["description"]
    assert "ISO 8601" in parameters["since"]["description"]


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_a_planned_running_or_failed_transfer_not_a_succeeded_one(
    server: Server, ops: httpx.Client
) -> None:
    conn = draft(ops, unique("tenant"))
    base = a_base_time()
    # Each on its own model: a cancel also cancels the later windows of the same model.
    succeeded = seed(server, conn["id"], "succeeded", base, model="a")
    after_it = seed(server, conn["id"], "planned", base + timedelta(minutes=1), model="a")
    planned = seed(server, conn["id"], "planned", base, model="b")
    running = seed(server, conn["id"], "running", base, model="c")
    failed = seed(server, conn["id"], "failed", base, model="d")

    # Planned: cancelled at once (202), and asking again changes nothing (200).
    done = ok(ops.post(f"{API}/transfers/{planned}/cancel"), 202)
    assert done["id"] == planned and done["status"] == "cancelled" and done["finished_at"]
    assert done["error"] == "cancelled before it started"
    again = ok(ops.post(f"{API}/transfers/{planned}/cancel"), 200)
    assert again == done == ok(ops.get(f"{API}/transfers/{planned}"))

    # Running: the worker stops at its next batch; until then it runs, its cancel requested.
    stopping = ok(ops.post(f"{API}/transfers/{running}/cancel"), 202)
    assert (stopping["status"], stopping["cancel_requested"]) == ("running", True)
    assert stopping["finished_at"] is None
    # Failed: its window is still to deliver; the next run that takes it up cancels it.
    waiting = ok(ops.post(f"{API}/transfers/{failed}/cancel"), 202)
    assert (waiting["status"], waiting["cancel_requested"]) == ("failed", True)

    # Succeeded: nothing to cancel, and nothing else is touched (the later window stays).
    refused = error_of(ops.post(f"{API}/transfers/{succeeded}/cancel"), 409)
    assert refused["code"] == "conflict"
    assert "succeeded" in refused["message"] and "nothing to cancel" in refused["message"]
    assert ok(ops.get(f"{API}/transfers/{succeeded}"))["status"] == "succeeded"
    later = ok(ops.get(f"{API}/transfers/{after_it}"))
    assert (later["status"], later["cancel_requested"]) == ("planned", False)

    error_of(ops.post(f"{API}/transfers/{uuid.uuid4().hex}/cancel"), 404)
    error_of(ops.post(f"{API}/transfers/{unique('nope')}/cancel"), 404)

    # Audited once per cancel requested, by the operator's key; not the refusal or the repeat.
    cancels = [
        e
        for e in server.state.audit.recent(connection_id=conn["id"])
        if e["action"] == "transfer.cancel"
    ]
    assert sorted(e["changes"]["transfer"] for e in cancels) == sorted([planned, running, failed])
    assert {e["actor"] for e in cancels} == {"operator:ops"}
    assert listing(ops, connection=conn["id"], status="cancelled")["total"] == 1


def test_cancel_is_for_operators(server: Server, ops: httpx.Client) -> None:
    conn = draft(ops, unique("tenant"))
    planned = seed(server, conn["id"], "planned", a_base_time())
    link = new_link(ops, conn["tenant"])
    with server.client(link["token"]) as recipient:
        assert (
            error_of(recipient.post(f"{API}/transfers/{planned}/cancel"), 403)["code"]
            == "forbidden"
        )
    with server.client("") as anonymous:
        error_of(anonymous.post(f"{API}/transfers/{planned}/cancel"), 401)
    assert ok(ops.get(f"{API}/transfers/{planned}"))["status"] == "planned"


# -- a link holder's transfers ---------------------------------------------------------------------


def test_a_link_holder_sees_its_own_connections_transfers_only(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    tenant, stranger = unique("tenant"), unique("tenant")
    link = new_link(ops, tenant)
    path = "/recipient/transfers"
    with server.client(link["token"]) as recipient:
        error_of(recipient.get(f"{API}{path}"), 404)  # no connection yet
        name, bucket = unique("mine"), unique("rcpt")
        mine = ok(
            recipient.post(f"{API}/recipient/connection", json=recipient_body(name, bucket)), 201
        )
        assert listing(recipient, path)["total"] == 0
        policies = ok(recipient.get(f"{API}/recipient/connection/policies"))
        customer_sets_up(aws, policies, bucket)
        assert ok(recipient.post(f"{API}/recipient/connection/validate"))["passed"] is True
        ok(recipient.post(f"{API}/recipient/connection/activate"))

    # A real transfer of the (now active) connection, then older ones of known statuses.
    triggered = ok(ops.post(f"{API}/transfers", json={"connection": mine["id"]}), 202)
    (real,) = transfer_ids(ops, mine["id"], triggered)
    assert wait_for_transfer(ops, real)["status"] == "succeeded"
    base = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(3000))
    older = [
        seed(server, mine["id"], s, base + timedelta(minutes=m), model=f"m{m}")
        for m, s in enumerate(["succeeded", "failed", "cancelled"])
    ]
    own = [real, *reversed(older)]
    # Others' transfers: another tenant's, and another connection of the link's own tenant.
    sibling, foreign = draft(ops, tenant), draft(ops, stranger)
    hidden = {
        seed(server, sibling["id"], "succeeded", base + timedelta(minutes=1)),
        seed(server, foreign["id"], "failed", base + timedelta(minutes=2)),
    }

    # The link is spent (its connection is active), and still reads what was delivered.
    with server.client(link["token"]) as recipient:
        error_of(recipient.get(f"{API}/recipient/connection"), 410)
        page = listing(recipient, path)
        assert ids(page) == own and page["total"] == 4
        assert {t["connection_id"] for t in page["items"]} == {mine["id"]}
        # Naming another connection or tenant changes nothing: there is no such filter here.
        for sneaky in (
            {"connection": foreign["id"]},
            {"connection": sibling["name"]},
            {"tenant": stranger},
        ):
            assert ids(listing(recipient, path, **sneaky)) == own, sneaky
        walked, _ = walk(recipient, path, limit=1)
        assert walked == own
        assert ids(listing(recipient, path, status="failed")) == [older[1]]
        assert ids(listing(recipient, path, status=["succeeded", "cancelled"])) == [
            real,
            older[2],
            older[0],
        ]
        assert (
            ids(listing(recipient, path, since=(base + timedelta(minutes=1)).isoformat()))
            == own[:3]
        )
        walked, _ = walk(recipient, path, status="succeeded", since=base.isoformat(), limit=1)
        assert walked == [real, older[0]]
        assert not hidden & set(ids(listing(recipient, path, limit=500)))
        assert (
            error_of(recipient.get(f"{API}{path}", params={"status": "done"}), 422)["field"]
            == "status"
        )
        assert (
            error_of(recipient.get(f"{API}{path}", params={"since": "soon"}), 422)["field"]
            == "since"
        )
        assert (
            error_of(recipient.get(f"{API}{path}", params={"after": "x"}), 422)["field"] == "after"
        )
        # Everything else stays closed to it, now as before.
        error_of(recipient.get(f"{API}/transfers", params={"connection": mine["id"]}), 410)

    # Another tenant's link sees its own connection's (none yet), not its tenant's other
    # connection's nor this one's; an operator's key is no link.
    other_link = new_link(ops, stranger)
    with server.client(other_link["token"]) as other:
        error_of(other.get(f"{API}{path}"), 404)  # it created no connection yet
        body = recipient_body(unique("theirs"), unique("rcpt"))
        ok(other.post(f"{API}/recipient/connection", json=body), 201)
        assert listing(other, path, limit=500) == {
            "items": [],
            "total": 0,
            "next": None,
            "previous": None,
        }
    assert error_of(ops.get(f"{API}{path}"), 403)["code"] == "forbidden"

    # Revoked, the link reads nothing more.
    ok(ops.post(f"{API}/links/{link['id']}/revoke"))
    with server.client(link["token"]) as recipient:
        error_of(recipient.get(f"{API}{path}"), 410)
