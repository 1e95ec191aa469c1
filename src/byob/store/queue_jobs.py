"""Read-only views of Procrastinate's tables, which live in the same PostgreSQL database as
the state store (production mode only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.store.repository import Repository

# The unique index that keeps one waiting job per queueing lock (procrastinate.manager's
# QUEUEING_LOCK_CONSTRAINT).
_QUEUEING_LOCK = "procrastinate_jobs_queueing_lock_idx_v1"


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

    def queued_locks(self, locks: list[str]) -> set[str]:
        """Of these queueing locks, those a job waiting in the queue holds."""
        if not locks:
            return set()
        with self.reading() as db:
            rows = db.execute(
                sa.text(
                    "SELECT queueing_lock FROM procrastinate_jobs "
                    "WHERE status = 'todo' AND queueing_lock = ANY(:locks)"
                ),
                {"locks": locks},
            )
            return {str(lock) for lock in rows.scalars()}

    def defer(
        self, *, queue: str, task: str, priority: int, jobs: list[tuple[str, dict[str, Any]]]
    ) -> bool:
        """Queue many jobs of one task — (lock, arguments) each, the lock also its queueing
        lock — in one statement; False, and nothing queued, when a waiting job holds one of
        the queueing locks. Through Procrastinate's own `procrastinate_defer_jobs_v1`, so its
        triggers notify the workers and record the events; the rows go as parallel arrays of
        text, which the server assembles: psycopg dumps Procrastinate's composite array in
        Python, three times slower for a batch of 1,000."""
        try:
            with self.writing() as db:
                db.execute(
                    sa.text(
                        "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY("
                        "SELECT ROW(:queue, :task, :priority, j.lock, j.lock, j.args::jsonb, "
                        "NULL)::procrastinate_job_to_defer_v1 "
                        "FROM unnest(CAST(:locks AS text[]), CAST(:args AS text[])) "
                        "AS j(lock, args))))"
                    ),
                    {
                        "queue": queue,
                        "task": task,
                        "priority": priority,
                        "locks": [lock for lock, _ in jobs],
                        "args": [json.dumps(args) for _, args in jobs],
                    },
                ).all()
        except sa.exc.IntegrityError as exc:
            if getattr(getattr(exc.orig, "diag", None), "constraint_name", "") == _QUEUEING_LOCK:
                return False
            raise
        return True

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
