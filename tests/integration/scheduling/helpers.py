"""What the scheduling tests share: a settable clock, waiting, a source table, a run through
the embedded workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from byob.workers.local import LocalWorkers
from tests import support
from tests.support import wait_for  # noqa: F401 - the scheduling tests import it from here

if TYPE_CHECKING:
    from byob.services import Services

MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}
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


def create_invoices(url: str, rows: int = 60) -> None:
    """``rows`` invoices an hour old; ids not divisible by 3 are acme's, the rest globex's."""
    support.create_invoices(url, rows=rows, is_acme=lambda i: i % 3 != 0)


def acme_ids(rows: int = 60) -> list[int]:
    return [i for i in range(1, rows + 1) if i % 3]


def run_local(
    app: Services, name: str = "c1", *, sleeps: list[float] | None = None
) -> LocalWorkers:
    """Trigger through the embedded workers and wait for every transfer they started."""
    workers = LocalWorkers(app, sleep=(sleeps if sleeps is not None else []).append)
    app.transfers.dispatcher = workers
    try:
        app.transfers.trigger(name, actor="cli")
        for future in list(workers.futures):
            future.result(timeout=180)
    finally:
        workers.shutdown()
        app.transfers.dispatcher = None
    return workers
