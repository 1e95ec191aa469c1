"""Read-only views of Procrastinate's tables, which live in the same PostgreSQL database as
the state store (production mode only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from byob.store.repository import Repository


class QueueJobs(Repository):
    def schema_present(self) -> bool:
        with self.reading() as db:
            return bool(
                db.execute(sa.text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar()
            )

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Held while the queue's schema is checked and applied: processes starting together
        on a new database (byob serve's, workers) would otherwise both apply it, and one fail."""
        with self.writing() as db:
            db.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('byob-queue-schema'))"))
            yield

    def waiting(self, queue: str, *, now: datetime) -> tuple[int, float]:
        """Jobs waiting in ``queue``, and the age in seconds of the oldest one."""
        with self.reading() as db:
            count = db.execute(
                sa.text(
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE status = 'todo' AND queue_name = :queue"
                ),
                {"queue": queue},
            ).scalar_one()
            if not count:
                return 0, 0.0
            first = db.execute(
                sa.text(
                    "SELECT min(e.at) FROM procrastinate_events e "
                    "JOIN procrastinate_jobs j ON j.id = e.job_id "
                    "WHERE j.status = 'todo' AND j.queue_name = :queue AND e.type = 'deferred'"
                ),
                {"queue": queue},
            ).scalar()
        oldest = (now - first).total_seconds() if isinstance(first, datetime) else 0.0
        return int(count), oldest
