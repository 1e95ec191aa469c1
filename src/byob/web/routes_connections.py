"""/api/v1/connections: the operator's view of every tenant's destinations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from byob.views import connection_view
from byob.web.app import AccessDep, ByobDep, Operator
from byob.web.schemas import (
    ConnectionCreate,
    ConnectionPublic,
    ConnectionUpdate,
    Page,
    Policies,
    ValidationPublic,
)

router = APIRouter(prefix="/connections", tags=["connections"])
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def creation_fields(body: Any) -> tuple[dict[str, Any], str | None]:
    fields = body.model_dump(by_alias=True, exclude={"secret_access_key"})
    return fields, body.secret_access_key


def update_fields(body: ConnectionUpdate) -> tuple[dict[str, Any], str | None]:
    changes = body.model_dump(by_alias=True, exclude_unset=True, exclude={"secret_access_key"})
    return changes, body.secret_access_key


def validation_view(conn: Any, results: list[Any]) -> dict[str, Any]:
    from byob.destinations.checks import passed

    return {
        "passed": passed(results),
        "at": max((r.at for r in results), default=conn.updated_at),
        "current": True,
        "checks": [r.as_dict() for r in results],
    }


@router.post("", status_code=201, response_model=ConnectionPublic, response_model_by_alias=True)
def create_connection(body: ConnectionCreate, byob: ByobDep, who: Operator) -> dict[str, Any]:
    fields, secret = creation_fields(body)
    conn = byob.create_connection(secret_access_key=secret, actor=who.actor, **fields)
    return connection_view(conn, byob)


@router.get("", response_model=Page[ConnectionPublic], response_model_by_alias=True)
def list_connections(
    byob: ByobDep,
    who: Operator,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    conns = byob.connections.list(tenant=tenant, limit=limit + 1, offset=offset)
    return {
        "items": [connection_view(c, byob) for c in conns[:limit]],
        "next_offset": offset + limit if len(conns) > limit else None,
    }


@router.get("/{name}", response_model=ConnectionPublic, response_model_by_alias=True)
def get_connection(name: str, byob: ByobDep, who: Operator) -> dict[str, Any]:
    return connection_view(byob.connections.get(name), byob)


@router.patch("/{name}", response_model=ConnectionPublic, response_model_by_alias=True)
def update_connection(
    name: str, body: ConnectionUpdate, byob: ByobDep, who: Operator
) -> dict[str, Any]:
    changes, secret = update_fields(body)
    conn = byob.update_connection(name, changes, secret_access_key=secret, actor=who.actor)
    return connection_view(conn, byob)


@router.delete("/{name}", status_code=204)
def delete_connection(name: str, byob: ByobDep, who: Operator) -> Response:
    byob.delete_connection(name, actor=who.actor)
    return Response(status_code=204)


@router.post("/{name}/validate", response_model=ValidationPublic)
def validate_connection(name: str, byob: ByobDep, who: Operator) -> dict[str, Any]:
    conn, results = byob.validate(name, actor=who.actor)
    return validation_view(conn, results)


@router.post("/{name}/activate", response_model=ConnectionPublic, response_model_by_alias=True)
def activate_connection(
    name: str, byob: ByobDep, access: AccessDep, who: Operator
) -> dict[str, Any]:
    conn = byob.activate(name, actor=who.actor)
    access.after_activation(conn)
    return connection_view(conn, byob)


@router.post("/{name}/pause", response_model=ConnectionPublic, response_model_by_alias=True)
def pause_connection(name: str, byob: ByobDep, who: Operator) -> dict[str, Any]:
    return connection_view(byob.pause(name, actor=who.actor), byob)


@router.get("/{name}/policies", response_model=Policies, response_model_exclude_none=True)
def connection_policies(name: str, byob: ByobDep, who: Operator) -> dict[str, Any]:
    return byob.policies(byob.connections.get(name))
