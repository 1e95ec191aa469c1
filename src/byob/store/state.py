"""The state store: one repository per record kind over one SQLAlchemy engine, and
transactions that span them (`StateStore.atomic`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from byob.store.audit import AuditLog
from byob.store.connection_pages import ConnectionPages
from byob.store.connections import Connections, Validations
from byob.store.credentials import ApiKeys, Links
from byob.store.imports import ImportRejections
from byob.store.outbox import Outbox
from byob.store.queue_jobs import QueueJobs
from byob.store.repository import Bind
from byob.store.transfers import Transfers


class StateStore:
    """Every repository, bound alike."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        self.connections = Connections(bind)
        self.connection_pages = ConnectionPages(bind)
        self.validations = Validations(bind)
        self.transfers = Transfers(bind)
        self.links = Links(bind)
        self.api_keys = ApiKeys(bind)
        self.audit = AuditLog(bind)
        self.queue_jobs = QueueJobs(bind)
        self.outbox = Outbox(bind)
        self.import_rejections = ImportRejections(bind)

    @contextmanager
    def atomic(self) -> Iterator[StateStore]:
        """One transaction across repositories: everything done through the yielded store is
        saved together, or (on any exception) nothing is."""
        if isinstance(self.bind, sa.Connection):
            yield self  # already inside one
            return
        with self.bind.begin() as db:
            yield StateStore(db)
