"""/api/v1/transfers and /api/v1/models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from byob.errors import ConflictError
from byob.views import transfer_view
from byob.web.app import ByobDep, Operator
from byob.web.schemas import ModelPublic, Page, TransferPublic, TransfersTriggered, TransferTrigger

router = APIRouter(tags=["transfers"])


@router.post("/transfers", status_code=202, response_model=TransfersTriggered)
def trigger_transfer(
    body: TransferTrigger, request: Request, byob: ByobDep, who: Operator
) -> dict[str, Any]:
    workers = request.app.state.workers
    if workers is None:
        raise ConflictError("this server runs no workers; run `byob transfers run` instead")
    triggered = workers.trigger(body.connection, model=body.model, full_refresh=body.full_refresh)
    byob.audit(
        actor=who.actor,
        action="transfer.trigger",
        connection_id=None,
        changes={
            "connection": body.connection,
            "model": body.model,
            "full_refresh": body.full_refresh,
        },
    )
    return {
        "transfers": [transfer_view(r) for r in triggered.planned],
        "queued": triggered.queued,
        "busy": triggered.busy,
    }


@router.get("/transfers", response_model=Page[TransferPublic])
def list_transfers(
    byob: ByobDep,
    who: Operator,
    connection: Annotated[str, Query(max_length=63)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    conn = byob.connections.get(connection)
    records = byob.transfers.list(conn.id, limit=limit + 1, offset=offset)
    return {
        "items": [transfer_view(r) for r in records[:limit]],
        "next_offset": offset + limit if len(records) > limit else None,
    }


@router.get("/transfers/{transfer_id}", response_model=TransferPublic)
def get_transfer(transfer_id: str, byob: ByobDep, who: Operator) -> dict[str, Any]:
    return transfer_view(byob.transfers.get(transfer_id))


@router.get("/models", response_model=list[ModelPublic], tags=["models"])
def list_models(byob: ByobDep, who: Operator) -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "table": m.spec.table,
            "tenant_column": m.spec.tenant_column,
            "cursor_column": m.spec.cursor_column,
            "primary_key": list(m.spec.primary_key),
            "columns": [
                {
                    "name": c.name,
                    "source": c.source_name,
                    "type": str(c.type),
                    "glue_type": c.type.glue_type(),
                }
                for c in m.columns
            ],
            "warnings": list(m.warnings),
        }
        for m in byob.check_models()
    ]
