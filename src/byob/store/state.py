"""The state store: one repository per record kind over one SQLAlchemy engine, and
transactions that span them (`StateStore.atomic`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from byob.lazy import Lazy
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

    Those every command uses are made at once; the others (and their modules) on first use
    (`byob.lazy`): a command need not load the repositories of what it does not touch."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        self.connections = Connections(bind)
        self.validations = Validations(bind)
        self.transfers = Transfers(bind)

    connection_pages: Lazy[ConnectionPages] = Lazy(
        "byob.store.connection_pages.ConnectionPages", lambda s: (s.bind,)
    )
    links: Lazy[Links] = Lazy("byob.store.credentials.Links", lambda s: (s.bind,))
    api_keys: Lazy[ApiKeys] = Lazy("byob.store.credentials.ApiKeys", lambda s: (s.bind,))
    audit: Lazy[AuditLog] = Lazy("byob.store.audit.AuditLog", lambda s: (s.bind,))
    queue_jobs: Lazy[QueueJobs] = Lazy("byob.store.queue_jobs.QueueJobs", lambda s: (s.bind,))
    outbox: Lazy[Outbox] = Lazy("byob.store.outbox.Outbox", lambda s: (s.bind,))
    import_rejections: Lazy[ImportRejections] = Lazy(
        "byob.store.imports.ImportRejections", lambda s: (s.bind,)
    )

    @contextmanager
    def atomic(self) -> Iterator[StateStore]:
        """One transaction across repositories: everything done through the yielded store is
        saved together, or (on any exception) nothing is."""
        if isinstance(self.bind, sa.Connection):
            yield self  # already inside one
            return
        with self.bind.begin() as db:
            yield StateStore(db)
