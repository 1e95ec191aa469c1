"""The webhook outbox: events written in the transaction of what they report, delivered at
least once by any byob process, across restarts."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from byob.domain.outbox import OutboxEvent, OutboxStatus
from byob.errors import NotFoundError
from byob.store import tables as T
from byob.store.repository import Repository, new_id

_COLUMNS = (
    "id",
    "event",
    "payload",
    "created_at",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "delivered_at",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _event(row: Any) -> OutboxEvent:
    m = dict(row._mapping)
    m["status"] = OutboxStatus(m["status"])
    return OutboxEvent(**m)


class Outbox(Repository):
    def add(self, event: str, payload: dict[str, Any], *, now: datetime) -> str:
        event_id = new_id()
        payload = json.loads(json.dumps(payload, default=_plain))  # times as ISO 8601
        with self.writing() as db:
            db.execute(
                T.webhook_events.insert().values(
                    id=event_id,
                    event=event,
                    payload=payload,
                    created_at=now,
                    status=OutboxStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
        return event_id

    def claim_due(self, *, now: datetime, lease: timedelta, limit: int = 20) -> list[OutboxEvent]:
        """Due events, each claimed for ``lease`` with compare-and-set, so that two processes
        delivering at once do not both send one."""
        c = T.webhook_events.c
        free = sa.or_(c.claimed_until.is_(None), c.claimed_until < now)
        with self.reading() as db:
            ids = [
                str(r.id)
                for r in db.execute(
                    sa.select(c.id)
                    .where(c.status == OutboxStatus.PENDING.value, c.next_attempt_at <= now, free)
                    .order_by(c.created_at, c.id)
                    .limit(limit)
                )
            ]
        claimed = []
        for event_id in ids:
            with self.writing() as db:
                won = db.execute(
                    T.webhook_events.update()
                    .where(c.id == event_id, c.status == OutboxStatus.PENDING.value, free)
                    .values(claimed_until=now + lease)
                ).rowcount
            if won:
                claimed.append(self.get(event_id))
        return claimed

    def any_due(self, *, now: datetime) -> bool:
        c = T.webhook_events.c
        with self.reading() as db:
            found = db.execute(
                sa.select(c.id)
                .where(
                    c.status == OutboxStatus.PENDING.value,
                    c.next_attempt_at <= now,
                    sa.or_(c.claimed_until.is_(None), c.claimed_until < now),
                )
                .limit(1)
            ).first()
        return found is not None

    def delivered(self, event_id: str, *, now: datetime) -> None:
        self._set(
            event_id,
            status=OutboxStatus.DELIVERED.value,
            delivered_at=now,
            attempts=T.webhook_events.c.attempts + 1,
            last_error=None,
            claimed_until=None,
        )

    def failed_attempt(
        self, event_id: str, *, error: str, next_attempt_at: datetime | None
    ) -> None:
        """One more failed attempt: try again at ``next_attempt_at``, or (None) give up."""
        status = OutboxStatus.PENDING if next_attempt_at else OutboxStatus.FAILED
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": T.webhook_events.c.attempts + 1,
            "last_error": error[:2000],
            "claimed_until": None,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        self._set(event_id, **values)

    def redeliver(self, event_id: str, *, now: datetime) -> OutboxEvent:
        """Deliver again at once: a failed event, or a delivered one the receiver lost."""
        self.get(event_id)
        self._set(
            event_id,
            status=OutboxStatus.PENDING.value,
            next_attempt_at=now,
            claimed_until=None,
            delivered_at=None,
        )
        return self.get(event_id)

    def get(self, event_id: str) -> OutboxEvent:
        c = T.webhook_events.c
        with self.reading() as db:
            row = db.execute(sa.select(*(c[k] for k in _COLUMNS)).where(c.id == event_id)).first()
        if row is None:
            raise NotFoundError(f"no webhook event {event_id!r}", field="id")
        return _event(row)

    def page(
        self, *, status: OutboxStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[OutboxEvent]:
        """Newest first."""
        c = T.webhook_events.c
        query = sa.select(*(c[k] for k in _COLUMNS)).order_by(c.created_at.desc(), c.id)
        if status is not None:
            query = query.where(c.status == status.value)
        with self.reading() as db:
            return [_event(r) for r in db.execute(query.limit(limit).offset(offset))]

    def _set(self, event_id: str, **values: Any) -> None:
        with self.writing() as db:
            db.execute(
                T.webhook_events.update().where(T.webhook_events.c.id == event_id).values(**values)
            )
