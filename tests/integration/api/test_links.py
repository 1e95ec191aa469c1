"""Connection links over HTTP against a real server: a random token stored only as its hash,
bound to one tenant, usable until the connection it created is activated; guessed, altered,
expired, revoked and spent links refused with JSON errors, never a stack trace."""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from byob.store import tables as T
from tests.integration.api.conftest import Server
from tests.integration.api.helpers import (
    API,
    customer_sets_up,
    error_of,
    ok,
    s3_body,
    sha256,
    unique,
)
from tests.support import CUSTOMER

pytestmark = pytest.mark.integration

RECIPIENT_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/recipient/link", None),
    ("GET", "/recipient/connection", None),
    (
        "POST",
        "/recipient/connection",
        {"name": "late", "account_id": CUSTOMER, "bucket": "late-bucket", "region": "eu-west-1"},
    ),
    ("PATCH", "/recipient/connection", {"base_path": "elsewhere"}),
    ("GET", "/recipient/connection/policies", None),
    ("POST", "/recipient/connection/validate", None),
    ("POST", "/recipient/connection/activate", None),
]


def recipient_body(name: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "account_id": CUSTOMER,
        "bucket": bucket,
        "region": "eu-west-1",
        "base_path": "shared",
    } | extra


def new_link(ops: httpx.Client, tenant: str, expires: str = "7d") -> dict[str, Any]:
    link = ok(ops.post(f"{API}/links", json={"tenant": tenant, "expires": expires}), 201)
    assert isinstance(link, dict)
    return link


def call(
    client: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> httpx.Response:
    return client.request(method, f"{API}{path}", json=body)


def assert_gone(server: Server, token: str) -> None:
    """Every recipient call with a dead link: 410 with a JSON error, nothing else."""
    with server.client(token) as recipient:
        for method, path, body in RECIPIENT_CALLS:
            error = error_of(call(recipient, method, path, body), 410)
            assert error["code"] == "gone"
        error_of(recipient.get(f"{API}/connections"), 410)


# -- the token ---------------------------------------------------------------------------------


def test_link_token_is_random_url_safe_and_stored_only_hashed(
    server: Server, ops: httpx.Client
) -> None:
    tenant = unique("tok")
    link = new_link(ops, tenant)
    token = link["token"]
    assert token.startswith("byob_link_")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token.removeprefix("byob_link_"))
    assert token in link["url"] and link["url"].startswith(server.base_url)
    assert link["tenant"] == tenant and link["state"] == "open"
    assert link["created_by"] == "operator:ops" and link["connection_id"] is None
    expires = datetime.fromisoformat(link["expires_at"])
    created = datetime.fromisoformat(link["created_at"])
    assert expires - created == timedelta(days=7)  # the default lifetime

    row = server.link_row(link["id"])
    assert row["token_hash"] == sha256(token)
    assert token not in server.state_text()
    assert token.removeprefix("byob_link_") not in server.state_text()

    # Listed (paginated) for operators, never with the token.
    second = new_link(ops, tenant, "12h")
    third = new_link(ops, tenant, "30m")
    first_page = ok(ops.get(f"{API}/links", params={"tenant": tenant, "limit": 2}))
    assert len(first_page["items"]) == 2 and first_page["total"] == 3
    assert first_page["previous"] is None and first_page["next"]
    rest = ok(
        ops.get(f"{API}/links", params={"tenant": tenant, "limit": 2, "after": first_page["next"]})
    )
    assert rest["next"] is None and rest["previous"]
    listed = first_page["items"] + rest["items"]
    assert [i["id"] for i in listed] == [third["id"], second["id"], link["id"]]  # newest first
    back = ops.get(
        f"{API}/links", params={"tenant": tenant, "limit": 2, "before": rest["previous"]}
    )
    assert ok(back)["items"] == first_page["items"]
    assert all("token" not in item and "url" not in item for item in listed)
    for page in (first_page, rest):
        for tok in (token, second["token"], third["token"]):
            assert tok not in str(page)

    tokens = {new_link(ops, tenant, "1h")["token"] for _ in range(5)}
    assert len(tokens) == 5


@pytest.mark.parametrize("expires", ["0m", "91d", "7", "d", "-1d", "7w", ""])
def test_link_lifetime_is_checked(ops: httpx.Client, expires: str) -> None:
    error = error_of(ops.post(f"{API}/links", json={"tenant": "acme", "expires": expires}), 422)
    assert error["field"] == "expires"


@pytest.mark.parametrize(
    ("expires", "lifetime"), [("7D", timedelta(days=7)), (" 12h", timedelta(hours=12))]
)
def test_link_lifetime_is_read_as_the_command_line_reads_it(
    ops: httpx.Client, expires: str, lifetime: timedelta
) -> None:
    """One rule for every door (`parse_lifetime`): the API refused what the CLI took."""
    link = ok(ops.post(f"{API}/links", json={"tenant": "acme", "expires": expires}), 201)
    created = datetime.fromisoformat(link["created_at"])
    assert datetime.fromisoformat(link["expires_at"]) - created == lifetime


def test_link_creation_refuses_bad_bodies(ops: httpx.Client) -> None:
    assert error_of(ops.post(f"{API}/links", json={}), 422)["field"] == "tenant"
    assert error_of(ops.post(f"{API}/links", json={"tenant": ""}), 422)["field"] == "tenant"
    error = error_of(ops.post(f"{API}/links", json={"tenant": "acme", "connection": "x"}), 404)
    assert error["field"] == "connection"
    error_of(ops.post(f"{API}/links/{unique('nope')}/revoke"), 404)


# -- the recipient's whole flow ----------------------------------------------------------------


def test_recipient_onboards_through_a_link_which_is_then_spent(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    tenant = unique("tenant")
    link = new_link(ops, tenant)
    with server.client(link["token"]) as recipient:
        me = ok(recipient.get(f"{API}/recipient/link"))
        assert me["id"] == link["id"] and me["tenant"] == tenant and me["state"] == "open"
        assert "token" not in me
        error_of(recipient.get(f"{API}/recipient/connection"), 404)  # none created yet
        error_of(recipient.patch(f"{API}/recipient/connection", json={"bucket": "x-bucket"}), 404)

        # The tenant is the link's: a body naming one is refused as an unknown field.
        name, bucket = unique("via-link"), unique("rcpt")
        sneaky = recipient_body(name, bucket, tenant="globex")
        error = error_of(recipient.post(f"{API}/recipient/connection", json=sneaky), 422)
        assert error["field"] == "tenant"
        bad = error_of(
            recipient.post(f"{API}/recipient/connection", json=recipient_body(name, "Bad_Bucket")),
            422,
        )
        assert bad["field"] == "bucket"
        error_of(recipient.get(f"{API}/recipient/connection"), 404)  # nothing was created

        created = ok(
            recipient.post(f"{API}/recipient/connection", json=recipient_body(name, bucket)), 201
        )
        assert created["tenant"] == tenant and created["status"] == "draft"
        again = recipient.post(
            f"{API}/recipient/connection", json=recipient_body(unique("two"), bucket)
        )
        assert error_of(again, 409)["code"] == "conflict"
        assert ok(recipient.get(f"{API}/recipient/link"))["connection_id"] == created["id"]
        assert ok(recipient.get(f"{API}/recipient/connection"))["id"] == created["id"]

        # The schedule is the vendor's to set: asking for another is refused, naming the
        # field, and nothing of that change is kept; the same schedule is no change at all.
        refused = recipient.patch(
            f"{API}/recipient/connection",
            json={"base_path": "shared/billing", "frequency_minutes": 15},
        )
        body = error_of(refused, 422)
        assert body["field"] == "frequency_minutes" and "vendor" in body["message"], body
        assert ok(recipient.get(f"{API}/recipient/connection"))["base_path"] != "shared/billing"
        patched = ok(
            recipient.patch(
                f"{API}/recipient/connection",
                json={"base_path": "shared/billing", "frequency_minutes": 1440},
            )
        )
        assert patched["base_path"] == "shared/billing" and patched["frequency_minutes"] == 1440
        # The tenant cannot be changed at all.
        error_of(recipient.patch(f"{API}/recipient/connection", json={"tenant": "globex"}), 422)

        policies = ok(recipient.get(f"{API}/recipient/connection/policies"))
        assert policies["external_id"] == created["external_id"]
        (grant,) = policies["permissions_policy"]["Statement"]
        assert grant["Resource"] == f"arn:aws:s3:::{bucket}/shared/billing/*"

        failing = ok(recipient.post(f"{API}/recipient/connection/validate"))
        assert failing["passed"] is False
        error_of(recipient.post(f"{API}/recipient/connection/activate"), 409)
        assert ok(recipient.get(f"{API}/recipient/link"))["state"] == "open"

        customer_sets_up(aws, policies, bucket)
        assert ok(recipient.post(f"{API}/recipient/connection/validate"))["passed"] is True
        active = ok(recipient.post(f"{API}/recipient/connection/activate"))
        assert active["status"] == "active" and active["id"] == created["id"]

    assert_gone(server, link["token"])
    links = ok(ops.get(f"{API}/links", params={"tenant": tenant}))["items"]
    assert [(item["id"], item["state"]) for item in links] == [(link["id"], "spent")]
    assert server.link_row(link["id"])["spent_at"] is not None
    # The operator sees the connection the link created, active, in the link's tenant.
    seen = ok(ops.get(f"{API}/connections/{name}"))
    assert seen["tenant"] == tenant and seen["status"] == "active"

    audit = server.state.audit.recent(connection_id=created["id"])
    actors = {(e["action"], e["actor"]) for e in audit}
    actor = f"link:{link['id']}"
    for action in (
        "connection.create",
        "connection.update",
        "connection.validate",
        "connection.activate",
    ):
        assert (action, actor) in actors, actors
    created_by = [
        e
        for e in server.state.audit.recent(limit=1000)
        if e["action"] == "link.create" and e["changes"].get("link") == link["id"]
    ]
    assert [e["actor"] for e in created_by] == ["operator:ops"]


def test_operator_activation_spends_the_link_too(
    server: Server, ops: httpx.Client, aws: Any
) -> None:
    link = new_link(ops, unique("tenant"))
    name, bucket = unique("op-activates"), unique("rcpt")
    with server.client(link["token"]) as recipient:
        ok(recipient.post(f"{API}/recipient/connection", json=recipient_body(name, bucket)), 201)
        policies = ok(recipient.get(f"{API}/recipient/connection/policies"))
    customer_sets_up(aws, policies, bucket)
    assert ok(ops.post(f"{API}/connections/{name}/validate"))["passed"] is True
    ok(ops.post(f"{API}/connections/{name}/activate"))
    assert_gone(server, link["token"])
    # Back to draft (new bucket) does not revive the link.
    ok(ops.patch(f"{API}/connections/{name}", json={"bucket": unique("moved")}))
    assert_gone(server, link["token"])


# -- what a link can reach ---------------------------------------------------------------------


def test_link_reaches_only_its_own_connection(server: Server, ops: httpx.Client) -> None:
    tenant = unique("tenant")
    other = ok(
        ops.post(
            f"{API}/connections", json=s3_body(unique("globex-s3"), unique("gbx"), tenant="globex")
        ),
        201,
    )
    other.pop("warnings")
    sibling = ok(
        ops.post(
            f"{API}/connections", json=s3_body(unique("same-tenant"), unique("sib"), tenant=tenant)
        ),
        201,
    )
    link = new_link(ops, tenant)
    name = unique("mine")
    with server.client(link["token"]) as recipient:
        # Before it created anything it sees nothing, not even its own tenant's connections.
        error_of(recipient.get(f"{API}/recipient/connection"), 404)
        mine = ok(
            recipient.post(f"{API}/recipient/connection", json=recipient_body(name, unique("b"))),
            201,
        )

        # Operator endpoints are refused outright, whatever they name.
        for method, path, body in [
            ("GET", "/connections", None),
            ("GET", f"/connections/{other['name']}", None),
            ("GET", f"/connections/{other['id']}", None),
            ("GET", f"/connections/{sibling['name']}", None),
            ("GET", f"/connections/{mine['name']}", None),
            ("PATCH", f"/connections/{other['name']}", {"bucket": "stolen-bucket"}),
            ("DELETE", f"/connections/{other['name']}", None),
            ("GET", f"/connections/{other['name']}/policies", None),
            ("POST", f"/connections/{other['name']}/validate", None),
            ("POST", f"/connections/{other['name']}/activate", None),
            ("POST", f"/connections/{other['name']}/pause", None),
            ("POST", "/connections", s3_body(unique("x"), unique("x"))),
            ("GET", "/links", None),
            ("POST", "/links", {"tenant": "globex"}),
            ("POST", f"/links/{link['id']}/revoke", None),
            ("GET", "/models", None),
            ("POST", "/transfers", {"connection": other["name"]}),
            ("GET", "/transfers", None),
        ]:
            error = error_of(call(recipient, method, path, body), 403)
            assert error["code"] == "forbidden", (method, path)
            assert other["external_id"] not in str(error)

        # Recipient endpoints only ever return the link's own connection.
        for response in (
            recipient.get(f"{API}/recipient/connection"),
            recipient.patch(f"{API}/recipient/connection", json={"base_path": "mine"}),
        ):
            body = ok(response)
            assert body["id"] == mine["id"] and body["tenant"] == tenant
        policies = ok(recipient.get(f"{API}/recipient/connection/policies"))
        assert policies["external_id"] == mine["external_id"]
        for response in (
            recipient.get(f"{API}/recipient/connection?name={other['name']}"),
            recipient.get(f"{API}/recipient/connection", params={"id": other["id"]}),
        ):
            assert ok(response)["id"] == mine["id"]

    # Nothing of the others changed.
    assert ok(ops.get(f"{API}/connections/{other['name']}")) == other
    assert (
        ok(ops.get(f"{API}/connections/{sibling['name']}"))["updated_at"] == sibling["updated_at"]
    )

    # An operator key is not a link: recipient endpoints refuse it.
    for method, path, body in RECIPIENT_CALLS:
        assert error_of(call(ops, method, path, body), 403)["code"] == "forbidden"


def test_a_link_of_another_tenant_cannot_see_this_one(server: Server, ops: httpx.Client) -> None:
    first, second = new_link(ops, unique("one")), new_link(ops, unique("two"))
    with server.client(first["token"]) as one, server.client(second["token"]) as two:
        mine = ok(
            one.post(
                f"{API}/recipient/connection", json=recipient_body(unique("one"), unique("b"))
            ),
            201,
        )
        error_of(two.get(f"{API}/recipient/connection"), 404)
        theirs = ok(
            two.post(
                f"{API}/recipient/connection", json=recipient_body(unique("two"), unique("b"))
            ),
            201,
        )
        assert ok(one.get(f"{API}/recipient/connection"))["id"] == mine["id"]
        assert ok(two.get(f"{API}/recipient/connection"))["id"] == theirs["id"]
        # Revoking one link leaves the other usable.
        ok(ops.post(f"{API}/links/{first['id']}/revoke"))
        error_of(one.get(f"{API}/recipient/connection"), 410)
        assert ok(two.get(f"{API}/recipient/connection"))["id"] == theirs["id"]


def test_a_name_another_tenant_uses_is_free_and_reveals_nothing(
    server: Server, ops: httpx.Client
) -> None:
    name = unique("billing")
    first, second = new_link(ops, unique("one")), new_link(ops, unique("two"))
    with server.client(first["token"]) as one, server.client(second["token"]) as two:
        mine = ok(
            one.post(f"{API}/recipient/connection", json=recipient_body(name, unique("b"))), 201
        )
        theirs = ok(
            two.post(f"{API}/recipient/connection", json=recipient_body(name, unique("b"))), 201
        )
    assert mine["id"] != theirs["id"] and mine["name"] == theirs["name"] == name
    # The operator sees both; the bare name is ambiguous and says how to pick one.
    error = error_of(ops.get(f"{API}/connections/{name}"), 409)
    assert "give its ID" in error["message"]
    assert ok(ops.get(f"{API}/connections/{theirs['id']}"))["tenant"] == second["tenant"]


def test_a_connection_named_like_another_ones_id_does_not_shadow_it(
    request: pytest.FixtureRequest, server: Server, ops: httpx.Client
) -> None:
    victim = new_link(ops, unique("victim"))
    attacker = new_link(ops, unique("attacker"))
    with server.client(victim["token"]) as one, server.client(attacker["token"]) as two:
        mine = ok(
            one.post(f"{API}/recipient/connection", json=recipient_body(unique("v"), unique("b"))),
            201,
        )
        # Another tenant's recipient names its connection after the victim's connection id.
        shadow = two.post(
            f"{API}/recipient/connection", json=recipient_body(mine["id"], unique("b"))
        )
        if shadow.status_code == 201:
            seen = ok(one.get(f"{API}/recipient/connection"))
            assert (seen["id"], seen["tenant"]) == (mine["id"], victim["tenant"])
            by_id = ok(ops.get(f"{API}/connections/{mine['id']}"))
            assert by_id["id"] == mine["id"]
        else:
            error_of(shadow)


def test_concurrent_creations_through_one_link_make_one_connection(
    server: Server, ops: httpx.Client
) -> None:
    for _trial in range(20):
        tenant = unique("race")
        link = new_link(ops, tenant)

        def post(i: int, token: str = link["token"], tenant: str = tenant) -> int:
            with server.client(token) as recipient:
                body = recipient_body(f"{tenant}-{i}", f"{tenant}-{i}")
                return recipient.post(f"{API}/recipient/connection", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, range(8)))
        assert sorted(codes) == [201] + [409] * 7, codes
        listed = ok(ops.get(f"{API}/connections", params={"tenant": tenant}))["items"]
        assert len(listed) == 1, f"one link made {len(listed)} connections"


# -- dead, guessed and altered links -----------------------------------------------------------


def test_guessed_and_altered_tokens_are_unauthenticated(server: Server, ops: httpx.Client) -> None:
    link = new_link(ops, unique("guess"))
    token = link["token"]
    last = token[-1]
    altered = [
        token[:-1] + ("A" if last != "A" else "B"),
        token[:12] + ("x" if token[12] != "x" else "y") + token[13:],
        token.upper() if token.upper() != token else token.lower(),
        token + "A",
        token[:-1],
        "byob_link_" + secrets.token_urlsafe(32),
        token.removeprefix("byob_link_"),
        "byob_key_" + token.removeprefix("byob_link_"),
    ]
    for guess in altered:
        with server.client(guess) as client:
            for method, path, body in RECIPIENT_CALLS[:2]:
                error = error_of(call(client, method, path, body), 401)
                assert error["code"] == "unauthenticated"
            error_of(client.get(f"{API}/connections"), 401)
    with server.client(token) as client:
        assert ok(client.get(f"{API}/recipient/link"))["state"] == "open"  # the real one works


def test_expired_link_is_gone(server: Server, ops: httpx.Client) -> None:
    link = new_link(ops, unique("expiring"), "1m")
    with server.client(link["token"]) as recipient:
        ok(
            recipient.post(
                f"{API}/recipient/connection", json=recipient_body(unique("exp"), unique("b"))
            ),
            201,
        )
    past = datetime.now(UTC) - timedelta(seconds=1)
    server.execute(T.links.update().where(T.links.c.id == link["id"]).values(expires_at=past))
    assert_gone(server, link["token"])
    (listed,) = ok(ops.get(f"{API}/links", params={"tenant": link["tenant"]}))["items"]
    assert listed["state"] == "expired"


def test_revoked_link_is_gone(server: Server, ops: httpx.Client) -> None:
    link = new_link(ops, unique("revoked"))
    with server.client(link["token"]) as recipient:
        ok(recipient.get(f"{API}/recipient/link"))
    revoked = ok(ops.post(f"{API}/links/{link['id']}/revoke"))
    assert revoked["state"] == "revoked" and "token" not in revoked
    assert_gone(server, link["token"])
    assert ok(ops.post(f"{API}/links/{link['id']}/revoke"))["state"] == "revoked"  # idempotent
    revocations = [
        e
        for e in server.state.audit.recent(limit=1000)
        if e["action"] == "link.revoke" and e["changes"].get("link") == link["id"]
    ]
    assert revocations and revocations[0]["actor"] == "operator:ops"


def test_no_answer_carries_a_stack_trace(server: Server) -> None:
    # Every error body in these tests goes through error_of, which refuses "Traceback"; here
    # malformed link tokens, too.
    for token in (
        "byob_link_",
        "byob_link_" + "=" * 43,
        "byob_link_\u00e9t\u00e9",
        "byob_link_%00",
    ):
        with server.client("") as client:
            response = client.get(
                f"{API}/recipient/link", headers={"Authorization": f"Bearer {token}".encode()}
            )
        assert response.status_code in (401, 410), response.text
        error_of(response)
