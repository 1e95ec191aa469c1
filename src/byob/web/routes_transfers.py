"""/api/v1/transfers and /api/v1/models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from byob.services.views import model_view, transfer_view
from byob.web.deps import Operator, ServicesDep
from byob.web.schemas import (
    CursorPage,
    ModelPublic,
    TransferPublic,
    TransfersTriggered,
    TransferTrigger,
)

router = APIRouter(tags=["transfers"])


@router.post("/transfers", status_code=202, response_model=TransfersTriggered)
def trigger_transfer(body: TransferTrigger, services: ServicesDep, who: Operator) -> dict[str, Any]:
    triggered = services.transfers.trigger(
        body.connection, model=body.model, full_refresh=body.full_refresh, actor=who.actor
    )
    return {
        "transfers": [transfer_view(r) for r in triggered.planned],
        "queued": triggered.queued,
        "busy": triggered.busy,
    }


@router.get("/transfers", response_model=CursorPage[TransferPublic])
def list_transfers(
    services: ServicesDep,
    who: Operator,
    connection: Annotated[str, Query(max_length=320)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    _, page = services.transfers.history(connection, after=after, before=before, limit=limit)
    return {
        "items": [transfer_view(r) for r in page.items],
        "total": page.total,
        "next": page.next,
        "previous": page.previous,
    }


@router.get("/transfers/{transfer_id}", response_model=TransferPublic)
def get_transfer(transfer_id: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return transfer_view(services.transfers.get(transfer_id))


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferPublic)
def cancel_transfer(transfer_id: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return transfer_view(services.transfers.cancel(transfer_id, actor=who.actor))


@router.get("/models", response_model=list[ModelPublic], tags=["models"])
def list_models(
    services: ServicesDep,
    who: Operator,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
) -> list[dict[str, Any]]:
    """Every model checked against the source; with ``tenant``, its rows per model."""
    return [model_view(m) for m in services.models.check(tenant=tenant)]
