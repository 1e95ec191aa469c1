"""What the scheduling tests share: a settable clock, waiting, free ports, a source table."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.support import pg_exec, pg_insert

MODEL = {"name": "invoices", "table": "invoices", "tenant_column": "tenant_id",
         "cursor_column": "updated_at", "primary_key": ["id"]}  # fmt: skip
ACME_ROWS = 40  # of 60 source rows, ids not divisible by 3 belong to acme


class FakeClock:
    """A clock the test moves by hand: ``clock()`` answers the time last set."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime | str) -> datetime:
        if isinstance(now, str):
            now = datetime.fromisoformat(now).replace(tzinfo=UTC)
        with self._lock:
            self._now = now
        return now


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition"
) -> Any:
    """Poll until ``condition()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def create_invoices(url: str, rows: int = 60) -> None:
    """``rows`` invoices an hour old; ids not divisible by 3 are acme's, the rest globex's."""
    pg_exec(
        url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz NOT NULL)",
    )
    pg_insert(
        url,
        "INSERT INTO invoices VALUES (%s, %s, %s, now() - interval '1 hour')",
        [(i, "acme" if i % 3 else "globex", f"{i}.25") for i in range(1, rows + 1)],
    )


def acme_ids(rows: int = 60) -> list[int]:
    return [i for i in range(1, rows + 1) if i % 3]
