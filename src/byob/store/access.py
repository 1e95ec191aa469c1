"""API keys, connection links and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.domain.access import ApiKey, Link, token_hash
from byob.errors import ConflictError, NotFoundError
from byob.store import tables as T
from byob.store.repositories import new_id


class ApiKeys:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, name: str, token: str, *, now: datetime) -> ApiKey:
        key = ApiKey(id=new_id(), name=name, created_at=now)
        try:
            with self.engine.begin() as db:
                db.execute(
                    T.api_keys.insert().values(
                        id=key.id, name=name, token_hash=token_hash(token), created_at=now
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise ConflictError(f"an API key named {name!r} already exists", field="name") from exc
        return key

    def find(self, token: str) -> ApiKey | None:
        """The live key with this token, if any (looked up by hash)."""
        c = T.api_keys.c
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(c.id, c.name, c.created_at, c.revoked_at).where(
                    c.token_hash == token_hash(token), c.revoked_at.is_(None)
                )
            ).first()
        return ApiKey(**row._mapping) if row else None

    def list(self) -> list[ApiKey]:
        c = T.api_keys.c
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(c.id, c.name, c.created_at, c.revoked_at).order_by(c.created_at)
            )
            return [ApiKey(**r._mapping) for r in rows]

    def revoke(self, name: str, *, now: datetime) -> None:
        c = T.api_keys.c
        with self.engine.begin() as db:
            done = db.execute(
                T.api_keys.update()
                .where(c.name == name, c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
        if not done:
            raise NotFoundError(f"no live API key named {name!r}", field="name")


_LINK_COLUMNS = (
    "id",
    "tenant",
    "created_by",
    "created_at",
    "expires_at",
    "revoked_at",
    "spent_at",
    "connection_id",
)


class Links:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, link: Link, token: str) -> Link:
        with self.engine.begin() as db:
            db.execute(
                T.links.insert().values(
                    token_hash=token_hash(token), **{k: getattr(link, k) for k in _LINK_COLUMNS}
                )
            )
        return link

    def _select(self) -> sa.Select[Any]:
        return sa.select(*(T.links.c[k] for k in _LINK_COLUMNS))

    def find(self, token: str) -> Link | None:
        with self.engine.connect() as db:
            row = db.execute(
                self._select().where(T.links.c.token_hash == token_hash(token))
            ).first()
        return Link(**row._mapping) if row else None

    def get(self, link_id: str) -> Link:
        with self.engine.connect() as db:
            row = db.execute(self._select().where(T.links.c.id == link_id)).first()
        if row is None:
            raise NotFoundError(f"no link {link_id!r}")
        return Link(**row._mapping)

    def list(self, *, tenant: str | None = None, limit: int = 50, offset: int = 0) -> list[Link]:
        query = self._select().order_by(T.links.c.created_at.desc(), T.links.c.id)
        if tenant is not None:
            query = query.where(T.links.c.tenant == tenant)
        with self.engine.connect() as db:
            return [Link(**r._mapping) for r in db.execute(query.limit(limit).offset(offset))]

    def revoke(self, link_id: str, *, now: datetime) -> Link:
        with self.engine.begin() as db:
            db.execute(
                T.links.update()
                .where(T.links.c.id == link_id, T.links.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return self.get(link_id)

    def attach(self, link_id: str, connection_id: str) -> None:
        """The connection this link created; a link creates at most one."""
        with self.engine.begin() as db:
            done = db.execute(
                T.links.update()
                .where(T.links.c.id == link_id, T.links.c.connection_id.is_(None))
                .values(connection_id=connection_id)
            ).rowcount
        if not done:
            raise ConflictError("this link already created its connection")

    def spend(self, link_id: str, *, now: datetime) -> None:
        with self.engine.begin() as db:
            db.execute(
                T.links.update()
                .where(T.links.c.id == link_id, T.links.c.spent_at.is_(None))
                .values(spent_at=now)
            )


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(
        self,
        *,
        actor: str,
        action: str,
        connection_id: str | None,
        changes: dict[str, Any],
        now: datetime,
    ) -> None:
        with self.engine.begin() as db:
            db.execute(
                T.audit_log.insert().values(
                    at=now, actor=actor, action=action, connection_id=connection_id, changes=changes
                )
            )

    def list(self, *, connection_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        c = T.audit_log.c
        query = sa.select(c.at, c.actor, c.action, c.connection_id, c.changes).order_by(c.id.desc())
        if connection_id is not None:
            query = query.where(c.connection_id == connection_id)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query.limit(limit))]
