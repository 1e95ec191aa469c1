"""Transfer windows on the cursor column: (previous high-water mark, new high-water mark]."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class TransferType(StrEnum):
    INCREMENTAL = "incremental"
    FULL_REFRESH = "full_refresh"
    IMPORT = "import"  # an import connection's run: the new files in the tenant's bucket


@dataclass(frozen=True, kw_only=True)
class Window:
    """Rows with ``low < cursor <= high``; ``low`` is None for a backfill (everything)."""

    low: datetime | None
    high: datetime

    def __post_init__(self) -> None:
        if self.high.tzinfo is None or (self.low is not None and self.low.tzinfo is None):
            raise ValueError("window bounds must be timezone-aware")
        if self.low is not None and self.low > self.high:
            raise ValueError("window low is above high")

    @property
    def empty(self) -> bool:
        return self.low is not None and self.low >= self.high


def plan_window(
    *,
    previous_high: datetime | None,
    source_now: datetime,
    settle_lag: timedelta,
    full_refresh: bool = False,
) -> tuple[TransferType, Window]:
    """Fix the next window. The new mark trails the source's clock by the settle lag, so rows
    committed late with an earlier cursor value still fall into a later window."""
    if source_now.tzinfo is None or (previous_high is not None and previous_high.tzinfo is None):
        raise ValueError("window bounds must be timezone-aware")
    high = source_now - settle_lag
    if full_refresh or previous_high is None:
        # A first transfer is a backfill: it holds every current row, like a full refresh.
        return TransferType.FULL_REFRESH, Window(low=None, high=high)
    # The clock may step back (failover, NTP): never move the mark backwards.
    return TransferType.INCREMENTAL, Window(low=previous_high, high=max(high, previous_high))
