"""/api/v1/connections: the operator's view of every tenant's destinations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from byob.services import Services
from byob.services.connections import Created, Validated
from byob.services.imports import rejections_view
from byob.services.views import validation_view
from byob.web.deps import Operator, ServicesDep
from byob.web.schemas import (
    ConnectionCreate,
    ConnectionCreated,
    ConnectionPublic,
    ConnectionUpdate,
    ConnectionUpdated,
    CursorPage,
    ErrorResponse,
    ImportRetried,
    ImportRetry,
    Policies,
    RecipientConnectionCreate,
    RejectedFiles,
    ValidationPublic,
)
from byob.web.view_json import view_json

router = APIRouter(prefix="/connections", tags=["connections"])
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]
RejectedLimit = Annotated[int, Query(ge=1, le=500)]
EXPORTS: dict[int | str, dict[str, Any]] = {
    409: {"description": "An export connection: it rejects no files.", "model": ErrorResponse}
}


def creation_fields(body: RecipientConnectionCreate) -> tuple[dict[str, Any], str | None]:
    fields = body.model_dump(by_alias=True, exclude={"secret_access_key"})
    fields["import_name"] = fields.pop("import")
    return fields, body.secret_access_key


def update_fields(body: ConnectionUpdate) -> tuple[dict[str, Any], str | None]:
    changes = body.model_dump(by_alias=True, exclude_unset=True, exclude={"secret_access_key"})
    return changes, body.secret_access_key


def validated_view(done: Validated) -> dict[str, Any]:
    return validation_view(done.validation, done.connection)


@router.post("", status_code=201, response_model=ConnectionCreated, response_model_by_alias=True)
def create_connection(
    body: ConnectionCreate, services: ServicesDep, who: Operator
) -> dict[str, Any]:
    fields, secret = creation_fields(body)
    created = services.connections.create(actor=who.actor, secret_access_key=secret, **fields)
    return created_view(services, created)


def created_view(services: Services, created: Created) -> dict[str, Any]:
    return services.connections.view(created.connection) | {"warnings": list(created.warnings)}


@router.get("", response_model=CursorPage[ConnectionPublic], response_model_by_alias=True)
def list_connections(
    services: ServicesDep,
    who: Operator,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    limit: Limit = 50,
    after: Cursor = None,
    before: Cursor = None,
) -> Response:
    page = services.connections.listing(tenant=tenant, after=after, before=before, limit=limit)
    return view_json(
        {"items": page.items, "total": page.total, "next": page.next, "previous": page.previous}
    )


@router.get("/{name}", response_model=ConnectionPublic, response_model_by_alias=True)
def get_connection(name: str, services: ServicesDep, who: Operator) -> Response:
    return view_json(services.connections.view(services.connections.get(name)))


@router.patch("/{name}", response_model=ConnectionUpdated, response_model_by_alias=True)
def update_connection(
    name: str, body: ConnectionUpdate, services: ServicesDep, who: Operator
) -> dict[str, Any]:
    changes, secret = update_fields(body)
    updated = services.connections.update(name, changes, secret_access_key=secret, actor=who.actor)
    return services.connections.view(updated.connection) | {
        "policy_changed": updated.policy_changed()
    }


@router.delete("/{name}", status_code=204)
def delete_connection(name: str, services: ServicesDep, who: Operator) -> Response:
    services.connections.delete(name, actor=who.actor)
    return Response(status_code=204)


@router.post("/{name}/validate", response_model=ValidationPublic)
def validate_connection(name: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return validated_view(services.connections.validate(name, actor=who.actor))


@router.post("/{name}/activate", response_model=ConnectionPublic, response_model_by_alias=True)
def activate_connection(name: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return services.connections.view(services.connections.activate(name, actor=who.actor))


@router.post("/{name}/pause", response_model=ConnectionPublic, response_model_by_alias=True)
def pause_connection(name: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return services.connections.view(services.connections.pause(name, actor=who.actor))


@router.post("/{name}/resume", response_model=ConnectionPublic, response_model_by_alias=True)
def resume_connection(name: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return services.connections.view(services.connections.resume(name, actor=who.actor))


@router.get("/{name}/policies", response_model=Policies, response_model_exclude_none=True)
def connection_policies(name: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return services.connections.policies(services.connections.get(name))


@router.get("/{name}/imports/rejected", response_model=RejectedFiles, responses=EXPORTS)
def rejected_files(
    name: str, services: ServicesDep, who: Operator, limit: RejectedLimit = 100
) -> dict[str, Any]:
    """An import connection's rejected files, newest first, each with its first problems
    (line, column, value, reason); 409 for an export connection."""
    return rejections_view(services.imports.rejected(name, limit=limit))


@router.post(
    "/{name}/imports/retry",
    response_model=ImportRetried,
    responses=EXPORTS
    | {
        404: {
            "description": "No such connection, or no such rejected file.",
            "model": ErrorResponse,
        }
    },
)
def retry_rejected_file(
    name: str, body: ImportRetry, services: ServicesDep, who: Operator
) -> dict[str, Any]:
    """Forget that a file was rejected, so the connection's next run tries it again (trigger
    one with POST /api/v1/transfers); 404 when the connection rejected no such key."""
    cleared = services.imports.retry(name, body.key, actor=who.actor)
    return {"key": body.key, "cleared": cleared}
