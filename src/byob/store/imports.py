"""The object versions import connections rejected. Every query is bound by connection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from byob.store import tables as T
from byob.store.repository import Repository

if TYPE_CHECKING:
    from byob.domain.imports import Rejection

# byob.domain.imports loads in the methods using it: every command opens the state store, few
# of them handle an import's rejected files (start-up time).


class ImportRejections(Repository):
    def add(
        self, connection_id: str, rejected: Iterable[Rejection], *, transfer_id: str | None
    ) -> None:
        """Remember each (key, ETag) as rejected, replacing an older rejection of it."""
        from byob.domain.imports import problem_dict

        c = T.import_rejections.c
        with self.writing() as db:
            for r in rejected:
                db.execute(
                    T.import_rejections.delete().where(
                        c.connection_id == connection_id, c.object_key == r.key, c.etag == r.etag
                    )
                )
                db.execute(
                    T.import_rejections.insert().values(
                        connection_id=connection_id,
                        object_key=r.key,
                        etag=r.etag,
                        size=r.size,
                        problems=[problem_dict(p) for p in r.problems],
                        transfer_id=transfer_id,
                        rejected_at=r.rejected_at,
                    )
                )

    def pairs(self, connection_id: str) -> frozenset[tuple[str, str]]:
        """The (key, ETag) pairs rejected and not retried since."""
        c = T.import_rejections.c
        with self.reading() as db:
            rows = db.execute(
                sa.select(c.object_key, c.etag).where(c.connection_id == connection_id)
            )
            return frozenset((key, etag) for key, etag in rows)

    def listing(self, connection_id: str, *, limit: int = 100) -> tuple[list[Rejection], int]:
        """The newest rejections (at most ``limit``) and how many there are in all."""
        from byob.domain.imports import Rejection, problems_of

        c = T.import_rejections.c
        with self.reading() as db:
            total = db.execute(
                sa.select(sa.func.count()).where(c.connection_id == connection_id)
            ).scalar_one()
            rows = db.execute(
                sa.select(T.import_rejections)
                .where(c.connection_id == connection_id)
                .order_by(c.rejected_at.desc(), c.object_key)
                .limit(limit)
            ).all()
        return [
            Rejection(
                key=r.object_key,
                etag=r.etag,
                size=r.size,
                problems=problems_of(r.problems),
                transfer_id=r.transfer_id,
                rejected_at=r.rejected_at,
            )
            for r in rows
        ], int(total)

    def count(self) -> int:
        """Rejected object versions waiting for a retry, over every connection."""
        with self.reading() as db:
            return int(
                db.execute(sa.select(sa.func.count()).select_from(T.import_rejections)).scalar_one()
            )

    def clear(self, connection_id: str, key: str) -> int:
        """Forget the key's rejections (every ETag): the next run tries it again."""
        c = T.import_rejections.c
        with self.writing() as db:
            return int(
                db.execute(
                    T.import_rejections.delete().where(
                        c.connection_id == connection_id, c.object_key == key
                    )
                ).rowcount
            )
