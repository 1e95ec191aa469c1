"""Operator API keys and connection links, stored by the SHA-256 of their tokens only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from byob.domain.credentials import ApiKey, Link, token_hash
from byob.domain.paging import Cursor, Page
from byob.errors import ConflictError, NotFoundError
from byob.store import tables as T
from byob.store.keyset import newest_first
from byob.store.repository import Repository, new_id

# Every API request and operator page looks its key up: the statements are built once (with
# bound parameters), not again each time, with their cache keys.
_KEY = T.api_keys.c
_LIVE_BY_HASH = sa.select(_KEY.id, _KEY.name, _KEY.created_at, _KEY.revoked_at).where(
    _KEY.token_hash == sa.bindparam("token_hash"), _KEY.revoked_at.is_(None)
)
_LIVE_BY_ID = sa.select(_KEY.id).where(_KEY.id == sa.bindparam("id"), _KEY.revoked_at.is_(None))
_KEY_FIELDS = ("id", "name", "created_at", "revoked_at")


class ApiKeys(Repository):
    def add(self, name: str, token: str, *, now: datetime) -> ApiKey:
        key = ApiKey(id=new_id(), name=name, created_at=now)
        try:
            with self.writing() as db:
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
        with self.reading() as db:
            rows = self._read_rows(db, _LIVE_BY_HASH, {"token_hash": token_hash(token)})
        return ApiKey(**dict(zip(_KEY_FIELDS, rows[0], strict=True))) if rows else None

    def is_live(self, key_id: str) -> bool:
        with self.reading() as db:
            return bool(self._read_rows(db, _LIVE_BY_ID, {"id": key_id}))

    def all(self) -> list[ApiKey]:
        c = T.api_keys.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(c.id, c.name, c.created_at, c.revoked_at).order_by(c.created_at)
            )
            return [ApiKey(**r._mapping) for r in rows]

    def revoke(self, name: str, *, now: datetime) -> None:
        c = T.api_keys.c
        with self.writing() as db:
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
    "read_only",
)


class Links(Repository):
    def add(self, link: Link, token: str) -> Link:
        with self.writing() as db:
            db.execute(
                T.links.insert().values(
                    token_hash=token_hash(token), **{k: getattr(link, k) for k in _LINK_COLUMNS}
                )
            )
        return link

    def _select(self) -> sa.Select[Any]:
        return sa.select(*(T.links.c[k] for k in _LINK_COLUMNS))

    def find(self, token: str) -> Link | None:
        with self.reading() as db:
            row = db.execute(
                self._select().where(T.links.c.token_hash == token_hash(token))
            ).first()
        return Link(**row._mapping) if row else None

    def get(self, link_id: str) -> Link:
        with self.reading() as db:
            row = db.execute(self._select().where(T.links.c.id == link_id)).first()
        if row is None:
            raise NotFoundError(f"no link {link_id!r}")
        return Link(**row._mapping)

    def ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        return self._ids_starting_with(T.links, prefix, limit)

    def page(
        self,
        *,
        tenant: str | None = None,
        after: Cursor | None = None,
        before: Cursor | None = None,
        limit: int = 50,
    ) -> Page[Link]:
        """Newest first, a keyset page (see `store.keyset`) in one query."""
        c = T.links.c
        with self.reading() as db:
            return newest_first(
                db,
                T.links,
                [c[k] for k in _LINK_COLUMNS],
                [] if tenant is None else [c.tenant == tenant],
                after=after,
                before=before,
                limit=limit,
                item=lambda row: Link(**row),
            )

    def of_connection(self, connection_id: str) -> list[Link]:
        """The link (if any) that created this connection."""
        with self.reading() as db:
            rows = db.execute(self._select().where(T.links.c.connection_id == connection_id))
            return [Link(**r._mapping) for r in rows]

    def revoke(self, link_id: str, *, now: datetime) -> Link:
        with self.writing() as db:
            db.execute(
                T.links.update()
                .where(T.links.c.id == link_id, T.links.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return self.get(link_id)

    def attach(self, link_id: str, connection_id: str) -> None:
        """The connection this link created; a link creates at most one."""
        with self.writing() as db:
            done = db.execute(
                T.links.update()
                .where(T.links.c.id == link_id, T.links.c.connection_id.is_(None))
                .values(connection_id=connection_id)
            ).rowcount
        if not done:
            raise ConflictError("this link already created its connection; update it instead")

    def spend_for(self, connection_id: str, *, now: datetime) -> list[str]:
        """Spend the link that created this connection (it was activated): the IDs spent.
        Read-only links only show the connection, and stay usable."""
        c = T.links.c
        with self.writing() as db:
            spent = [
                str(r.id)
                for r in db.execute(
                    sa.select(c.id).where(
                        c.connection_id == connection_id,
                        c.spent_at.is_(None),
                        c.read_only.is_(False),
                    )
                )
            ]
            if spent:
                db.execute(T.links.update().where(c.id.in_(spent)).values(spent_at=now))
        return spent
