"""The audit log: who did what to which connection, and when (never a secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.store import tables as T
from byob.store.repository import Repository


class AuditLog(Repository):
    def record(
        self,
        *,
        actor: str,
        action: str,
        connection_id: str | None,
        changes: dict[str, Any],
        now: datetime,
    ) -> None:
        with self.writing() as db:
            db.execute(
                T.audit_log.insert().values(
                    at=now, actor=actor, action=action, connection_id=connection_id, changes=changes
                )
            )

    def recent(self, *, connection_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        c = T.audit_log.c
        query = sa.select(c.at, c.actor, c.action, c.connection_id, c.changes).order_by(c.id.desc())
        if connection_id is not None:
            query = query.where(c.connection_id == connection_id)
        with self.reading() as db:
            return [dict(r._mapping) for r in db.execute(query.limit(limit))]
