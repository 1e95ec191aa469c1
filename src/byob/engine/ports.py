"""What a transfer needs from the rest of byob, as ports: the state store's transfer log and,
for Athena connections, a table catalog. The engine imports no adapter."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, datetime
from typing import Any, Protocol

from byob.domain.models import ResolvedModel
from byob.domain.transfers import FileRecord, ModelState, TransferRecord
from byob.domain.windows import TransferType, Window


class Catalog(Protocol):
    """A table catalog kept in step with delivered files (Glue for Athena connections)."""

    def sync(
        self, model: ResolvedModel, *, transfer_date: date, snapshot: datetime | None = None
    ) -> Any: ...

    def keep_only(self, models: Collection[str]) -> list[str]:
        """Drop the tables of models not in ``models``; the names dropped."""
        ...


class TransferLog(Protocol):
    """The durable record that makes a retry exactly-once (see engine/transfer.py)."""

    def model_state(self, connection_id: str, model: str) -> ModelState: ...

    def pending(self, connection_id: str, model: str) -> list[TransferRecord]: ...

    def plan(
        self,
        *,
        connection_id: str,
        model: str,
        kind: TransferType,
        window: Window,
        started_at: datetime,
        now: datetime,
    ) -> TransferRecord: ...

    def last_started_at(self, connection_id: str, model: str) -> datetime | None: ...

    def rows_delivered(self, connection_id: str, model: str) -> int: ...

    def last_full_refresh(self, connection_id: str, model: str) -> datetime | None: ...

    def get(self, transfer_id: str) -> TransferRecord: ...

    def start_attempt(self, transfer_id: str) -> int: ...

    def files(self, transfer_id: str) -> list[FileRecord]: ...

    def file_started(self, transfer_id: str, file_part: int, key: str, attempt: int) -> None: ...

    def file_upload_id(self, transfer_id: str, file_part: int, upload_id: str) -> None: ...

    def file_committed(
        self, transfer_id: str, file_part: int, *, rows: int, size: int, sha256: str
    ) -> None: ...

    def file_voided(self, transfer_id: str, file_part: int) -> None: ...

    def cancel_requested(self, transfer_id: str) -> bool: ...

    def cancelled(self, transfer_id: str, *, now: datetime) -> None: ...

    def fail(self, transfer_id: str, error: str, *, now: datetime) -> None: ...

    def commit(
        self,
        record: TransferRecord,
        *,
        rows: int,
        size: int,
        files: int,
        manifest_key: str,
        columns: list[dict[str, Any]],
        now: datetime,
        note: str | None = None,
        excluded_rows: int = 0,
        within: Callable[[Any, TransferRecord], None] | None = None,
    ) -> TransferRecord: ...
