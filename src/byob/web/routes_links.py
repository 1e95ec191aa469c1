"""/api/v1/links (operators) and /api/v1/recipient (a link holder's onboarding, nothing else)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from byob.domain.access import parse_lifetime
from byob.views import connection_view, link_view
from byob.web.app import AccessDep, ByobDep, Operator, Recipient
from byob.web.routes_connections import creation_fields, update_fields, validation_view
from byob.web.schemas import (
    ConnectionPublic,
    ConnectionUpdate,
    LinkCreate,
    LinkCreated,
    LinkPublic,
    Page,
    Policies,
    RecipientConnectionCreate,
    ValidationPublic,
)

router = APIRouter(prefix="/links", tags=["links"])
recipient = APIRouter(prefix="/recipient", tags=["recipient (connection link)"])


@router.post("", status_code=201, response_model=LinkCreated)
def create_link(
    body: LinkCreate, byob: ByobDep, access: AccessDep, who: Operator
) -> dict[str, Any]:
    link, token = access.create_link(
        body.tenant, lifetime=parse_lifetime(body.expires), created_by=who.actor
    )
    return link_view(link, byob.clock()) | {"token": token, "url": access.link_url(token)}


@router.get("", response_model=Page[LinkPublic])
def list_links(
    byob: ByobDep,
    access: AccessDep,
    who: Operator,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    links = access.links.list(tenant=tenant, limit=limit + 1, offset=offset)
    now = byob.clock()
    return {
        "items": [link_view(link, now) for link in links[:limit]],
        "next_offset": offset + limit if len(links) > limit else None,
    }


@router.post("/{link_id}/revoke", response_model=LinkPublic)
def revoke_link(link_id: str, byob: ByobDep, access: AccessDep, who: Operator) -> dict[str, Any]:
    return link_view(access.revoke_link(link_id, actor=who.actor), byob.clock())


@recipient.get("/link", response_model=LinkPublic)
def my_link(byob: ByobDep, who: Recipient) -> dict[str, Any]:
    assert who.link is not None
    return link_view(who.link, byob.clock())


@recipient.post(
    "/connection", status_code=201, response_model=ConnectionPublic, response_model_by_alias=True
)
def create_my_connection(
    body: RecipientConnectionCreate, byob: ByobDep, access: AccessDep, who: Recipient
) -> dict[str, Any]:
    fields, secret = creation_fields(body)
    return connection_view(access.create_via_link(who, fields, secret), byob)


@recipient.get("/connection", response_model=ConnectionPublic, response_model_by_alias=True)
def get_my_connection(byob: ByobDep, access: AccessDep, who: Recipient) -> dict[str, Any]:
    return connection_view(access.own_connection(who), byob)


@recipient.patch("/connection", response_model=ConnectionPublic, response_model_by_alias=True)
def update_my_connection(
    body: ConnectionUpdate, byob: ByobDep, access: AccessDep, who: Recipient
) -> dict[str, Any]:
    conn = access.own_connection(who)
    changes, secret = update_fields(body)
    changes.pop("frequency_minutes", None)  # the schedule is the vendor's to set
    updated = byob.update_connection(
        conn.id, changes, secret_access_key=secret, actor=f"link:{who.link.id}"
    )  # type: ignore[union-attr]
    return connection_view(updated, byob)


@recipient.get("/connection/policies", response_model=Policies, response_model_exclude_none=True)
def my_policies(byob: ByobDep, access: AccessDep, who: Recipient) -> dict[str, Any]:
    return byob.policies(access.own_connection(who))


@recipient.post("/connection/validate", response_model=ValidationPublic)
def validate_my_connection(byob: ByobDep, access: AccessDep, who: Recipient) -> dict[str, Any]:
    conn = access.own_connection(who)
    conn, results = byob.validate(conn.id, actor=f"link:{who.link.id}")  # type: ignore[union-attr]
    return validation_view(conn, results)


@recipient.post(
    "/connection/activate", response_model=ConnectionPublic, response_model_by_alias=True
)
def activate_my_connection(byob: ByobDep, access: AccessDep, who: Recipient) -> dict[str, Any]:
    conn = access.own_connection(who)
    active = byob.activate(conn.id, actor=f"link:{who.link.id}")  # type: ignore[union-attr]
    access.after_activation(active)
    return connection_view(active, byob)
