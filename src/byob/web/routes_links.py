"""/api/v1/links (operators) and /api/v1/recipient (a link holder's onboarding, nothing else)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from byob.domain.credentials import parse_lifetime
from byob.services.imports import rejections_view
from byob.services.views import link_view
from byob.web.deps import Operator, Recipient, RecipientReader, ServicesDep
from byob.web.routes_connections import (
    EXPORTS,
    RejectedLimit,
    created_view,
    creation_fields,
    update_fields,
    validated_view,
)
from byob.web.routes_transfers import Limit, PageCursor, Since, StatusFilter, transfer_page
from byob.web.schemas import (
    ConnectionCreated,
    ConnectionPublic,
    ConnectionUpdate,
    CursorPage,
    LinkCreate,
    LinkCreated,
    LinkPublic,
    Policies,
    RecipientConnectionCreate,
    RejectedFiles,
    TransferPublic,
    ValidationPublic,
)

router = APIRouter(prefix="/links", tags=["links"])
recipient = APIRouter(prefix="/recipient", tags=["recipient (connection link)"])


@router.post("", status_code=201, response_model=LinkCreated)
def create_link(body: LinkCreate, services: ServicesDep, who: Operator) -> dict[str, Any]:
    link, token = services.links.create_for(
        body.tenant,
        lifetime=parse_lifetime(body.expires),
        actor=who.actor,
        connection=body.connection,
        read_only=body.read_only,
    )
    return link_view(link, services.now()) | {"token": token, "url": services.links.url(token)}


@router.get("", response_model=CursorPage[LinkPublic])
def list_links(
    services: ServicesDep,
    who: Operator,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = services.links.page(tenant=tenant, after=after, before=before, limit=limit)
    now = services.now()
    return {
        "items": [link_view(link, now) for link in page.items],
        "total": page.total,
        "next": page.next,
        "previous": page.previous,
    }


@router.post("/{link_id}/revoke", response_model=LinkPublic)
def revoke_link(link_id: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return link_view(services.links.revoke(link_id, actor=who.actor), services.now())


@recipient.get("/link", response_model=LinkPublic)
def my_link(services: ServicesDep, who: Recipient) -> dict[str, Any]:
    assert who.link is not None
    return link_view(who.link, services.now())


@recipient.post(
    "/connection", status_code=201, response_model=ConnectionCreated, response_model_by_alias=True
)
def create_my_connection(
    body: RecipientConnectionCreate, services: ServicesDep, who: Recipient
) -> dict[str, Any]:
    fields, secret = creation_fields(body)
    return created_view(services, services.links.create_connection(who, fields, secret))


@recipient.get("/connection", response_model=ConnectionPublic, response_model_by_alias=True)
def get_my_connection(services: ServicesDep, who: Recipient) -> dict[str, Any]:
    return services.connections.view(services.links.own_connection(who))


@recipient.patch("/connection", response_model=ConnectionPublic, response_model_by_alias=True)
def update_my_connection(
    body: ConnectionUpdate, services: ServicesDep, who: Recipient
) -> dict[str, Any]:
    changes, secret = update_fields(body)
    return services.connections.view(services.links.update_connection(who, changes, secret))


@recipient.get("/connection/policies", response_model=Policies, response_model_exclude_none=True)
def my_policies(services: ServicesDep, who: Recipient) -> dict[str, Any]:
    return services.connections.policies(services.links.own_connection(who))


@recipient.post("/connection/validate", response_model=ValidationPublic)
def validate_my_connection(services: ServicesDep, who: Recipient) -> dict[str, Any]:
    conn = services.links.own_connection(who)
    return validated_view(services.connections.validate(conn.id, actor=who.actor))


@recipient.post(
    "/connection/activate", response_model=ConnectionPublic, response_model_by_alias=True
)
def activate_my_connection(services: ServicesDep, who: Recipient) -> dict[str, Any]:
    conn = services.links.own_connection(who)
    return services.connections.view(services.connections.activate(conn.id, actor=who.actor))


@recipient.get("/transfers", response_model=CursorPage[TransferPublic])
def my_transfers(
    services: ServicesDep,
    who: RecipientReader,
    status: StatusFilter = (),
    since: Since = None,
    limit: Limit = 50,
    after: PageCursor = None,
    before: PageCursor = None,
) -> dict[str, Any]:
    """The transfers of this link's connection, newest first. The link still reads them once
    its connection is active (it can do nothing else then)."""
    conn = services.links.own_connection(who)
    page = services.transfers.listing(
        connection=conn.id, statuses=status, since=since, after=after, before=before, limit=limit
    )
    return transfer_page(page)


@recipient.get("/connection/imports/rejected", response_model=RejectedFiles, responses=EXPORTS)
def my_rejected_files(
    services: ServicesDep, who: RecipientReader, limit: RejectedLimit = 100
) -> dict[str, Any]:
    """The files this link's import connection rejected, newest first, with their first
    problems, so the recipient can fix and replace them. Read, like the transfers, once the
    connection is active; retrying one is the vendor's."""
    conn = services.links.own_connection(who)
    return rejections_view(services.imports.rejected(conn, limit=limit))
