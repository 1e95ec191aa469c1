"""Webhook events as records: kept in the state store until the operator's endpoint has them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class OutboxStatus(StrEnum):
    PENDING = "pending"  # to be delivered (again) at next_attempt_at
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # every attempt failed; `byob webhooks redeliver` tries again


@dataclass(frozen=True, kw_only=True)
class OutboxEvent:
    id: str  # sent as X-Byob-Event-Id and in the body: receivers deduplicate on it
    event: str
    payload: dict[str, Any]
    created_at: datetime
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


MAX_ATTEMPTS = 12  # with the backoff below, about a day of trying


def next_attempt(attempts: int, now: datetime, *, jitter: float) -> datetime:
    """When to try again after ``attempts`` failed ones: doubling from 10 s to at most 4 h,
    ``jitter`` (0..1) spreading retries of many events."""
    base = min(10.0 * 2 ** (attempts - 1), 4 * 3600.0)
    return now + timedelta(seconds=base * (0.5 + jitter / 2))
