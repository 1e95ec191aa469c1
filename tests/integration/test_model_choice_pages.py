"""Choosing the models a connection receives on the pages: the recipient's bucket step (and
the operator's Create New, the same step) lists each offered model with its description and
delivered columns, hashed ones marked and excluded ones absent; all checked stores None (every
offered model, later ones too), a subset stores itself, none is refused. The operator changes
the selection on the connection's page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from byob.demo.emulator import LocalAws
from byob.domain.credentials import parse_lifetime
from byob.services import Services
from byob.web.app import create_app
from tests.support import CUSTOMER, create, make_services, onboard_s3, pg_exec

pytestmark = pytest.mark.integration

CONFIG = """
[source]
url = "{url}"

[[models]]
name = "invoices"
table = "invoices"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = "id"
description = "Invoices sent to the customer"

[[models]]
name = "customers"
table = "customers"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = "id"
exclude = ["ssn"]
hash = ["email"]

[[models]]
name = "internal"
table = "internal"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = "id"
offered = false
"""

BUCKET_FIELDS = {
    "type": "s3",
    "account_id": CUSTOMER,
    "bucket": "acme-data",
    "region": "eu-west-1",
    "base_path": "exports",
    "auth": "role",
    "workgroup": "primary",
}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


@pytest.fixture
def services(tmp_path: Path, pg_url: str, aws: LocalAws) -> Services:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz NOT NULL)",
        "CREATE TABLE customers (id bigint PRIMARY KEY, tenant_id text NOT NULL, email text, "
        "ssn text, note text, updated_at timestamptz NOT NULL)",
        "CREATE TABLE internal (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
    )
    config = tmp_path / "byob.toml"
    config.write_text(CONFIG.format(url=pg_url))
    return make_services(tmp_path, config, aws)


@pytest.fixture
def recipient(services: Services) -> Iterator[TestClient]:
    """A browser that opened a fresh connection link of tenant acme."""
    _, token = services.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli")
    with TestClient(create_app(services)) as client:
        assert client.get(f"/connect/{token}").status_code == 200
        yield client


@pytest.fixture
def operator(services: Services) -> Iterator[TestClient]:
    """A browser signed in as an operator."""
    _, key = services.api_keys.create("ops")
    with TestClient(create_app(services)) as client:
        login = client.get("/login")
        client.post("/login", data={"api_key": key, "csrf_token": csrf_of(login.text)})
        yield client


def post_bucket(client: TestClient, url: str, name: str, models: list[str]) -> Any:
    page = client.get(url)
    assert page.status_code == 200, page.text[:2000]
    form: dict[str, Any] = BUCKET_FIELDS | {"name": name, "csrf_token": csrf_of(page.text)}
    form |= {"models_shown": "1", "models": models}  # a list: one field per checked box
    action = re.search(r'<form method="post" action="([^"]+)" class="form" novalidate', page.text)
    assert action, page.text[:2000]
    return client.post(html.unescape(action.group(1)), data=form)


def test_bucket_step_lists_each_offered_model_with_its_columns(recipient: TestClient) -> None:
    page = recipient.get("/connect/bucket?type=s3").text
    assert 'id="model-invoices"' in page and 'id="model-customers"' in page
    assert "model-internal" not in page  # not offered
    assert "Invoices sent to the customer" in page
    customers = page.split('aria-label="Columns of customers"')[1].split("</ul>")[0]
    assert "<code>email</code>" in customers and "hashed" in customers
    assert "<code>note</code>" in customers and "ssn" not in customers  # excluded: absent
    assert re.search(r'id="model-invoices"[^>]* checked', page)  # all checked by default
    assert re.search(r'id="model-customers"[^>]* checked', page)


def test_all_models_checked_stores_every_offered_model(
    recipient: TestClient, services: Services
) -> None:
    sent = post_bucket(
        recipient, "/connect/bucket?type=s3", "all-models", ["invoices", "customers"]
    )
    assert sent.status_code == 200, sent.text[:3000]
    assert services.connections.get("all-models").models is None


def test_a_subset_is_stored_and_shown_again(recipient: TestClient, services: Services) -> None:
    sent = post_bucket(recipient, "/connect/bucket?type=s3", "some-models", ["customers"])
    assert sent.status_code == 200, sent.text[:3000]
    assert services.connections.get("some-models").models == ("customers",)
    again = recipient.get("/connect/bucket").text
    assert re.search(r'id="model-customers"[^>]* checked', again)
    assert not re.search(r'id="model-invoices"[^>]* checked', again)
    # Checking every model again goes back to every offered model.
    sent = post_bucket(recipient, "/connect/bucket", "some-models", ["invoices", "customers"])
    assert sent.status_code == 200, sent.text[:3000]
    assert services.connections.get("some-models").models is None


def test_resaving_the_step_keeps_a_named_selection_named(
    recipient: TestClient, services: Services
) -> None:
    """A selection named elsewhere (CLI, API) that holds every model offered today stays a
    named list when the step is saved again unchanged: turned into "every model", it would
    silently take in a model offered later."""
    sent = post_bucket(recipient, "/connect/bucket?type=s3", "named", ["customers"])
    assert sent.status_code == 200, sent.text[:3000]
    conn = services.connections.get("named")
    services.connections.update(conn.id, {"models": ["invoices", "customers"]}, actor="cli")
    assert services.connections.get("named").models == ("invoices", "customers")

    again = post_bucket(recipient, "/connect/bucket", "named", ["invoices", "customers"])
    assert again.status_code == 200, again.text[:3000]
    assert services.connections.get("named").models == ("invoices", "customers")


def test_no_model_checked_is_refused_naming_models(
    recipient: TestClient, services: Services
) -> None:
    refused = post_bucket(recipient, "/connect/bucket?type=s3", "no-models", [])
    assert refused.status_code == 422
    assert 'href="#f-models"' in refused.text
    error = re.search(r'id="f-models-error"[^>]*>([^<]*)<', refused.text)
    assert error and "models must name at least one model" in error.group(1)
    assert not re.search(r'id="model-invoices"[^>]* checked', refused.text)  # as submitted
    assert [c.name for c in services.connections.all()] == []


def test_operator_create_new_has_the_same_choice(operator: TestClient, services: Services) -> None:
    sent = post_bucket(
        operator, "/connections/new/bucket?type=s3&tenant=acme", "op-models", ["invoices"]
    )
    assert sent.status_code == 200, sent.text[:3000]
    conn = services.connections.get("op-models")
    assert (conn.tenant, conn.models) == ("acme", ("invoices",))


def test_operator_changes_the_selection_on_the_connection_page(
    operator: TestClient, services: Services
) -> None:
    conn = create(
        services,
        name="ops-choice",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="acme-data",
        region="eu-west-1",
    )
    page = operator.get(f"/connections/{conn.id}")
    assert "Receives every offered model (invoices, customers)" in page.text
    url = f"/connections/{conn.id}/models"
    token = csrf_of(page.text)

    chose = operator.post(
        url, data={"csrf_token": token, "models_shown": "1", "models": "invoices"}
    )
    assert chose.status_code == 200 and "starts with a backfill" in chose.text, chose.text[:3000]
    assert "Receives invoices." in chose.text
    assert services.connections.get(conn.id).models == ("invoices",)

    none = operator.post(url, data={"csrf_token": token, "models_shown": "1"})
    assert none.status_code == 422
    assert "models must name at least one model" in none.text
    assert services.connections.get(conn.id).models == ("invoices",)

    every = {"csrf_token": token, "models_shown": "1", "models": ["invoices", "customers"]}
    back = operator.post(url, data=every)
    assert back.status_code == 200, back.text[:3000]
    assert services.connections.get(conn.id).models is None
    audit = services.adapters.state.audit.recent(connection_id=conn.id)
    updates = [e for e in audit if e["action"] == "connection.update"]
    assert [e["actor"] for e in updates] == ["operator:ops"] * 2, audit
    assert updates[0]["changes"]["backfill"] == ["customers"], audit

    forged = operator.post(url, data={"models_shown": "1", "models": "invoices"})
    assert forged.status_code == 403
    assert services.connections.get(conn.id).models is None


def test_the_delivery_page_shows_only_the_models_the_connection_receives(
    services: Services, aws: LocalAws
) -> None:
    conn, _ = onboard_s3(services, aws, name="shows-choice", bucket="acme-data")
    services.connections.update(conn.id, {"models": ["customers"]}, actor="cli")
    _, token = services.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli", shows=conn)
    with TestClient(create_app(services)) as reader:
        page = reader.get(f"/connect/{token}")
        assert page.status_code == 200 and "/customers/dt=YYYY-MM-DD/" in page.text, page.text
        # Neither a model it does not receive nor one the vendor does not offer is named.
        assert "invoices" not in page.text and "internal" not in page.text


def test_every_door_says_what_a_selection_receives_once_a_model_is_no_longer_offered(
    tmp_path: Path, services: Services, pg_url: str
) -> None:
    """The selection as stored still names a model the vendor stopped offering; what the
    connection receives (and what every door shows as received) is the selection's models
    still offered."""
    from byob.cli.connections import _models_text

    conn = create(
        services,
        name="narrowed",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="acme-data",
        region="eu-west-1",
        models=["invoices", "customers"],
    )
    config = tmp_path / "byob.toml"
    config.write_text(
        CONFIG.format(url=pg_url).replace(
            'description = "Invoices sent to the customer"',
            'description = "Invoices sent to the customer"\noffered = false',
        )
    )
    later = make_services(tmp_path, config)
    view = later.connections.view(later.connections.get(conn.id))
    assert view["models"] == ["invoices", "customers"] and view["receives"] == ["customers"]
    assert _models_text(view) == "customers"  # `byob connections show`
    [listed] = later.connections.listing().items
    assert listed["receives"] == ["customers"]
    with TestClient(create_app(later)) as client:
        _, key = later.api_keys.create("reader")
        got = client.get(
            f"/api/v1/connections/{conn.name}", headers={"Authorization": f"Bearer {key}"}
        )
        assert got.status_code == 200 and got.json()["receives"] == ["customers"], got.text

    everything = later.connections.view(later.connections.get(conn.id)) | {"models": None}
    assert _models_text(everything) == "every offered model (customers)"


def test_a_tenant_without_rows_in_the_models_it_chose_is_warned_at_creation(
    services: Services, pg_url: str
) -> None:
    """Rows in a model the connection does not receive deliver nothing to it: the warning
    counts the models it receives."""
    pg_exec(pg_url, "INSERT INTO invoices VALUES (1, 'acme', 9.99, now())")
    created = services.connections.create(
        actor="cli",
        name="no-customers",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="acme-data",
        region="eu-west-1",
        models=["customers"],
    )
    assert created.tenant_rows == 0
    assert created.warnings == (
        "tenant 'acme' has no rows in any model it receives (customers): its transfers "
        "deliver nothing until it has; check that it is the tenant column's exact value",
    )
