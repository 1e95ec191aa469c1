"""What byob tells the operator's webhook: the event names and the one shape of each payload,
whichever front door or worker caused the event."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from byob.domain.connections import Connection

if TYPE_CHECKING:
    from byob.store.state import StateStore


class Event(StrEnum):
    TRANSFER_SUCCEEDED = "transfer.succeeded"
    TRANSFER_CANCELLED = "transfer.cancelled"
    TRANSFER_FAILED = "transfer.failed"
    CONNECTION_FAILING = "connection.failing"
    IMPORT_SUCCEEDED = "import.succeeded"
    IMPORT_FILE_REJECTED = "import.file_rejected"
    IMPORT_FAILED = "import.failed"


class Events(Protocol):
    """Where events go (the operator's webhook); emitting never blocks a transfer."""

    def emit(self, event: Event, payload: dict[str, Any], *, tx: StateStore | None = None) -> None:
        """Record the event; with ``tx``, in that transaction: it is kept if and only if what
        it reports is."""

    def start(self) -> None:
        """Deliver in the background from now on (a serving or working process)."""

    def close(self) -> None:
        """Deliver what is due (within a bounded time), then stop."""


class NoEvents:
    """No webhook configured."""

    def emit(self, event: Event, payload: dict[str, Any], *, tx: StateStore | None = None) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def about(conn: Connection) -> dict[str, Any]:
    """What every payload says of its connection."""
    return {"connection": conn.name, "connection_id": conn.id, "tenant": conn.tenant}
