"""What byob tells the operator's webhook: the event names and the one shape of each payload,
whichever front door or worker caused the event."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from byob.domain.connections import Connection


class Event(StrEnum):
    TRANSFER_SUCCEEDED = "transfer.succeeded"
    TRANSFER_CANCELLED = "transfer.cancelled"
    TRANSFER_FAILED = "transfer.failed"
    CONNECTION_FAILING = "connection.failing"


class Events(Protocol):
    """Where events go (a webhook); emitting never blocks or fails a transfer."""

    def emit(self, event: Event, payload: dict[str, Any]) -> None: ...

    def close(self) -> None:
        """Deliver what is queued (within a bounded time), then stop."""


class NoEvents:
    """No webhook configured."""

    def emit(self, event: Event, payload: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def about(conn: Connection) -> dict[str, Any]:
    """What every payload says of its connection."""
    return {"connection": conn.name, "connection_id": conn.id, "tenant": conn.tenant}
