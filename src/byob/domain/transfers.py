"""Transfers as records: their status, their files and each model's delivered state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from byob.domain.windows import TransferType, Window
from byob.errors import InvalidFieldError


class TransferStatus(StrEnum):
    PLANNED = "planned"  # window fixed, not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a later run finishes it, same window, same file names
    CANCELLED = "cancelled"


# Not yet succeeded or cancelled: a later run must finish these, oldest first.
PENDING = (TransferStatus.PLANNED, TransferStatus.RUNNING, TransferStatus.FAILED)
_STATUS_NAMES = {member.value: member for member in TransferStatus}


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
    # An import run's objects by what happened to them (see `ImportCounts`); None for exports.
    import_counts: dict[str, int] | None = None


def cancel_refusal(record: TransferRecord) -> str | None:
    """Why the transfer cannot be cancelled, or None. A failed one can: its window is still
    to be delivered (the next run finishes it), and cancelling hands it to a new window."""
    if record.status is TransferStatus.SUCCEEDED:
        return (
            f"transfer {record.id} has succeeded: its files are delivered and stay; "
            "there is nothing to cancel"
        )
    return None


def cancellable(record: TransferRecord) -> bool:
    """Whether a cancel would change anything: not succeeded (refused), not cancelled, and
    not asked already (a failed one waits for the run that takes it up)."""
    return (
        cancel_refusal(record) is None
        and record.status is not TransferStatus.CANCELLED
        and not record.cancel_requested
    )


def cancel_outcome(status: TransferStatus) -> str:
    """Where a cancel leaves a transfer now in ``status``, as every door tells it."""
    then = "its window is delivered by the next transfer"
    if status is TransferStatus.CANCELLED:
        return f"is cancelled; {then}"
    if status is TransferStatus.RUNNING:
        return f"stops at its next batch and removes its files; {then}"
    if status is TransferStatus.FAILED:
        return f"is cancelled when a run next takes it up, its files removed; {then}"
    return f"is cancelled as soon as it is picked up; {then}"


@dataclass(frozen=True, kw_only=True)
class TransferFilter:
    """Which transfers a list holds; a field left empty does not narrow it."""

    connection_id: str | None = None
    tenant: str | None = None
    statuses: frozenset[TransferStatus] = frozenset()
    since: datetime | None = None  # created at or after


def parse_statuses(values: Iterable[str]) -> frozenset[TransferStatus]:
    """The statuses named; anything but a `TransferStatus` value is refused, naming ``status``."""
    found: set[TransferStatus] = set()
    for value in values:
        status = _STATUS_NAMES.get(value)
        if status is None:
            raise InvalidFieldError(
                f"status {value!r} is not a transfer status: use one of {', '.join(_STATUS_NAMES)}",
                field="status",
            )
        found.add(status)
    return frozenset(found)


def parse_since(value: str) -> datetime:
    """An ISO 8601 date or time, UTC unless it names its offset; else refused, naming
    ``since``."""
    try:
        moment = datetime.fromisoformat(value.strip())
        # Out-of-range years fail here, when moved to UTC, not later in the state store.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidFieldError(
            f"since must be an ISO 8601 date or time such as 2026-05-01 or "
            f"2026-05-01T12:00:00Z, not {value!r}",
            field="since",
        ) from None


@dataclass(frozen=True, kw_only=True)
class FileRecord:
    file_part: int
    key: str
    state: FileState
    upload_id: str | None
    rows: int
    bytes: int
    sha256: str | None


@dataclass(frozen=True, kw_only=True)
class TransferProgress:
    """How far a running transfer is, for a display or a sign-of-life line."""

    transfer_id: str
    model: str
    rows: int
    bytes: int  # Parquet bytes written so far (grows a row group at a time)
    total: int | None  # rows in the window; None when not known
    estimated: bool  # the total is an estimate, not a count
    elapsed: float  # seconds since the transfer started reading

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None without a total or a rate yet."""
        if self.total is None or self.rows_per_second <= 0:
            return None
        return max(self.total - self.rows, 0) / self.rows_per_second

    def to_dict(self) -> dict[str, Any]:
        eta = self.eta_seconds
        return {
            "transfer": self.transfer_id,
            "model": self.model,
            "rows": self.rows,
            "total": self.total,
            "estimated": self.estimated,
            "rows_per_second": round(self.rows_per_second, 1),
            "bytes": self.bytes,
            "eta_seconds": None if eta is None else round(eta, 1),
        }


def held_back_note(rows: int, *, settle_lag_seconds: float) -> str | None:
    """What a transfer says of the rows newer than its window (the settle lag held them)."""
    if rows <= 0:
        return None
    subject = "1 row changed" if rows == 1 else f"{rows:,} rows changed"
    verb = "waits" if rows == 1 else "wait"
    return f"{subject} in the last {settle_lag_seconds:g} s {verb} for the next transfer"
