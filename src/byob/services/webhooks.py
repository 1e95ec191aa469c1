"""The webhook outbox as the operator sees it: what was sent, what failed, and sending again."""

from __future__ import annotations

from typing import Any

from byob.domain.outbox import OutboxEvent, OutboxStatus
from byob.services.ports import Adapters


class WebhookService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self.outbox = adapters.state.outbox

    def page(self, *, failed: bool = False, limit: int = 50) -> list[OutboxEvent]:
        """Newest first; only those every attempt failed for, with ``failed``."""
        return self.outbox.page(status=OutboxStatus.FAILED if failed else None, limit=limit)

    def redeliver(self, event_id: str, *, actor: str) -> OutboxEvent:
        """Send an event again at once (a running byob process delivers it; a command
        delivers it before it exits)."""
        now = self.adapters.clock()
        with self.adapters.state.atomic() as tx:
            event = tx.outbox.redeliver(event_id, now=now)
            tx.audit.record(
                actor=actor,
                action="webhook.redeliver",
                connection_id=None,
                changes={"event": event.id, "type": event.event},
                now=now,
            )
        return event


def webhook_view(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "event": event.event,
        "status": event.status.value,
        "attempts": event.attempts,
        "created_at": event.created_at,
        "next_attempt_at": event.next_attempt_at if event.status is OutboxStatus.PENDING else None,
        "delivered_at": event.delivered_at,
        "last_error": event.last_error,
        "data": event.payload,
    }
