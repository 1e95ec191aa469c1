"""The state store: one repository per record kind over one SQLAlchemy engine, and
transactions that span them (`StateStore.atomic`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

import sqlalchemy as sa

from byob.store.connections import Connections, Validations
from byob.store.repository import Bind
from byob.store.transfers import Transfers

if TYPE_CHECKING:
    from byob.store.audit import AuditLog
    from byob.store.connection_pages import ConnectionPages
    from byob.store.credentials import ApiKeys, Links
    from byob.store.imports import ImportRejections
    from byob.store.outbox import Outbox
    from byob.store.queue_jobs import QueueJobs


class StateStore:
    """Every repository, bound alike.

    Those every command uses are made at once; the others (and their modules) on first use:
    a command need not load the repositories of what it does not touch (start-up time).
    Repositories hold nothing but the bind, so two threads making one at once is harmless."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        self.connections = Connections(bind)
        self.validations = Validations(bind)
        self.transfers = Transfers(bind)

    @cached_property
    def connection_pages(self) -> ConnectionPages:
        from byob.store.connection_pages import ConnectionPages

        return ConnectionPages(self.bind)

    @cached_property
    def links(self) -> Links:
        from byob.store.credentials import Links

        return Links(self.bind)

    @cached_property
    def api_keys(self) -> ApiKeys:
        from byob.store.credentials import ApiKeys

        return ApiKeys(self.bind)

    @cached_property
    def audit(self) -> AuditLog:
        from byob.store.audit import AuditLog

        return AuditLog(self.bind)

    @cached_property
    def queue_jobs(self) -> QueueJobs:
        from byob.store.queue_jobs import QueueJobs

        return QueueJobs(self.bind)

    @cached_property
    def outbox(self) -> Outbox:
        from byob.store.outbox import Outbox

        return Outbox(self.bind)

    @cached_property
    def import_rejections(self) -> ImportRejections:
        from byob.store.imports import ImportRejections

        return ImportRejections(self.bind)

    @contextmanager
    def atomic(self) -> Iterator[StateStore]:
        """One transaction across repositories: everything done through the yielded store is
        saved together, or (on any exception) nothing is."""
        if isinstance(self.bind, sa.Connection):
            yield self  # already inside one
            return
        with self.bind.begin() as db:
            yield StateStore(db)
