"""Transfers as records: their status, their files and each model's delivered state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from byob.domain.windows import TransferType, Window


class TransferStatus(StrEnum):
    PLANNED = "planned"  # window fixed, not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a later run finishes it, same window, same file names
    CANCELLED = "cancelled"


# Not yet succeeded or cancelled: a later run must finish these, oldest first.
PENDING = (TransferStatus.PLANNED, TransferStatus.RUNNING, TransferStatus.FAILED)


class FileState(StrEnum):
    STARTED = "started"  # may exist (whole or not at all) from its first byte on
    COMMITTED = "committed"  # complete and durable
    VOID = "void"  # deleted, or replaced by an empty file


@dataclass(frozen=True, kw_only=True)
class ModelState:
    high_water_mark: datetime | None
    last_transfer_id: str | None
    columns: list[dict[str, Any]] | None


@dataclass(frozen=True, kw_only=True)
class TransferRecord:
    id: str
    connection_id: str
    model: str
    type: TransferType
    status: TransferStatus
    started_at: datetime
    window: Window
    rows: int
    bytes: int
    files: int
    attempts: int
    error: str | None
    manifest_key: str | None
    created_at: datetime
    finished_at: datetime | None
    cancel_requested: bool = False
    note: str | None = None  # what the figures do not say (rows excluded, a tenant with none)
    excluded_rows: int = 0  # rows with a NULL cursor left out (on_null_cursor = "exclude")


@dataclass(frozen=True, kw_only=True)
class FileRecord:
    file_part: int
    key: str
    state: FileState
    upload_id: str | None
    rows: int
    bytes: int
    sha256: str | None
