"""/api/v1/transfers and /api/v1/models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from byob.domain.paging import Page
from byob.domain.transfers import TransferRecord, TransferStatus
from byob.services.views import model_view, transfer_view
from byob.web.deps import Operator, ServicesDep
from byob.web.schemas import (
    CursorPage,
    ErrorResponse,
    ModelPublic,
    TransferPublic,
    TransfersTriggered,
    TransferTrigger,
)

router = APIRouter(tags=["transfers"])
Limit = Annotated[int, Query(ge=1, le=500)]
PageCursor = Annotated[str | None, Query(max_length=200)]
# Checked by the domain, which names the field; the schema documents the same values.
StatusFilter = Annotated[
    tuple[str, ...],
    Query(
        max_length=len(TransferStatus),
        description="Only transfers in these statuses: repeat the parameter for several "
        "(`?status=planned&status=running`).",
        json_schema_extra={"items": {"type": "string", "enum": [s.value for s in TransferStatus]}},
    ),
]
Since = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Only transfers created at or after this ISO 8601 date or time "
        "(UTC unless it gives an offset), e.g. `2026-05-01` or `2026-05-01T12:00:00Z`.",
    ),
]


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
    connection: Annotated[
        str | None, Query(max_length=320, description="A connection's name, ID or tenant/name.")
    ] = None,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    status: StatusFilter = (),
    since: Since = None,
    limit: Limit = 50,
    after: PageCursor = None,
    before: PageCursor = None,
) -> dict[str, Any]:
    """Every connection's transfers, newest first, narrowed by any of the filters."""
    page = services.transfers.listing(
        connection=connection,
        tenant=tenant,
        statuses=status,
        since=since,
        after=after,
        before=before,
        limit=limit,
    )
    return transfer_page(page)


def transfer_page(page: Page[TransferRecord]) -> dict[str, Any]:
    return {
        "items": [transfer_view(r) for r in page.items],
        "total": page.total,
        "next": page.next,
        "previous": page.previous,
    }


@router.get("/transfers/{transfer_id}", response_model=TransferPublic)
def get_transfer(transfer_id: str, services: ServicesDep, who: Operator) -> dict[str, Any]:
    return transfer_view(services.transfers.get(transfer_id))


@router.post(
    "/transfers/{transfer_id}/cancel",
    status_code=202,
    response_model=TransferPublic,
    responses={
        200: {"description": "Cancelled already: nothing changed.", "model": TransferPublic},
        409: {"description": "The transfer succeeded: nothing to cancel.", "model": ErrorResponse},
    },
)
def cancel_transfer(
    transfer_id: str, services: ServicesDep, who: Operator, response: Response
) -> dict[str, Any]:
    """Cancel a planned, running or failed transfer: a planned one at once, a running one at
    its next batch (it removes its files), a failed one when a run next takes it up. Its
    window is delivered by the next transfer."""
    done = services.transfers.request_cancel(transfer_id, actor=who.actor)
    if done.already:
        response.status_code = 200
    return transfer_view(done.record)


@router.get("/models", response_model=list[ModelPublic], tags=["models"])
def list_models(
    services: ServicesDep,
    who: Operator,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
) -> list[dict[str, Any]]:
    """Every model checked against the source; with ``tenant``, its rows per model."""
    return [model_view(m) for m in services.models.check(tenant=tenant)]
