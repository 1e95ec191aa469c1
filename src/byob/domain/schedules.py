"""Schedules aligned to UTC: a 60-minute connection runs at the top of each hour, a 1440-minute
one at midnight UTC, a 15-minute one at :00, :15, :30 and :45."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from byob.errors import InvalidFieldError

FREQUENCIES = (15, 60, 360, 720, 1440)
# How people say them (the wizard's choices, messages).
FREQUENCY_LABELS = {
    15: "every 15 minutes",
    60: "hourly",
    360: "every 6 hours",
    720: "every 12 hours",
    1440: "daily",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def frequency(value: object) -> int:
    """A connection's frequency in minutes, one of FREQUENCIES (a form's "60" too)."""
    minutes = value
    if isinstance(value, str) and value.strip().isdigit():
        minutes = int(value)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes not in FREQUENCIES:
        choices = ", ".join(f"{m} ({FREQUENCY_LABELS[m]})" for m in FREQUENCIES)
        raise InvalidFieldError(
            f"frequency must be one of these minutes: {choices}", field="frequency_minutes"
        )
    return minutes


def slot_start(frequency_minutes: int, now: datetime) -> datetime:
    """The start of the schedule slot that contains ``now``."""
    if frequency_minutes not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {FREQUENCIES}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    step = timedelta(minutes=frequency_minutes)
    return _EPOCH + ((now.astimezone(UTC) - _EPOCH) // step) * step


def next_run(frequency_minutes: int, now: datetime) -> datetime:
    """The first aligned time strictly after ``now``."""
    return slot_start(frequency_minutes, now) + timedelta(minutes=frequency_minutes)


def due(frequency_minutes: int, *, last_slot: datetime | None, now: datetime) -> datetime | None:
    """The slot to run now, if the current slot has not run yet (a missed slot runs once,
    late; slots are never run twice)."""
    current = slot_start(frequency_minutes, now)
    if last_slot is not None and last_slot >= current:
        return None
    return current


@dataclass(frozen=True, kw_only=True)
class SlotClaim:
    """A connection's schedule slot to claim: ``slot``, if its last one is still ``previous``."""

    connection_id: str
    previous: datetime | None
    slot: datetime
