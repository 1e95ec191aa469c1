"""Import use cases: an import connection's run (the files the tenant dropped in their bucket
since the last one, each loaded exactly once), the files it rejected, and retrying one.

Runs take the one transfer path (`TransferService.run_model` routes an import connection
here), so the CLI, the schedulers and the workers hold, retry and tell them alike; each run is
a transfer record of type ``import`` with its object counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from byob.domain.connections import Connection
from byob.domain.transfers import TransferRecord, TransferStatus
from byob.domain.windows import TransferType, Window
from byob.engine.transfer import TransferResult
from byob.errors import ByobError, ConflictError, NotFoundError
from byob.services.connections import ConnectionService
from byob.services.events import Event, about
from byob.services.ports import Adapters
from byob.services.views import transfer_view

if TYPE_CHECKING:
    from byob.domain.imports import ImportSpec, Rejection
    from byob.engine.importer import ImportRun

log = logging.getLogger("byob.imports")

SHOWN_REJECTIONS = 100
TOLD_CHANGED_KEYS = 100  # in the log line and the webhook of a run (the note names fewer)


@dataclass(frozen=True, kw_only=True)
class Rejections:
    """A connection's rejected files, newest first, and how many there are in all."""

    items: list[Rejection]
    total: int


class ImportService:
    def __init__(self, adapters: Adapters, connections: ConnectionService) -> None:
        self.adapters = adapters
        self.state = adapters.state
        self.connections = connections

    def spec(self, conn: Connection) -> ImportSpec:
        return self.adapters.models_file.import_spec(conn.import_name)

    def declared(self) -> list[ImportSpec]:
        """The models file's imports (what a new import connection may load); none when the
        models file cannot be read, so the pages that offer them still show."""
        try:
            return list(self.adapters.models_file.imports)
        except ByobError:
            return []

    # -- running --------------------------------------------------------------------------------

    def plan(self, conn: Connection) -> TransferRecord:
        """A run fixed now, to start later (the caller gets its ID at once)."""
        now = self.adapters.clock()
        return self.state.transfers.plan(
            connection_id=conn.id,
            model=conn.import_name,
            kind=TransferType.IMPORT,
            window=Window(low=None, high=now),
            started_at=now,
            now=now,
        )

    def next_record(self, conn: Connection) -> TransferRecord:
        """The run planned for it and not started (a trigger's), else a new one. A run that
        failed stays failed: the next one is a new record (the ledger, not the record, keeps
        each file once)."""
        for record in self.state.transfers.pending(conn.id, conn.import_name):
            if record.status is TransferStatus.PLANNED:
                return record
        return self.plan(conn)

    def run(self, conn: Connection, record: TransferRecord) -> TransferResult:
        """List the tenant's files under the base path and load each new one in key order.
        A rejected file is remembered and told, and the run goes on; an AWS or database
        failure stops it (the record says what it had done, the files it rejected before
        are remembered and told all the same) and is raised."""
        # The import engine (CSV and Parquet readers, value parsing) and rules only for an
        # import run: every transfer command builds this service, few of them import.
        from byob.engine.importer import ImportRun, run_import

        spec = self.spec(conn)
        self.state.transfers.start_attempt(record.id)
        done = ImportRun()
        try:
            run_import(
                spec,
                self.adapters.import_objects(conn),
                self.adapters.import_target(),
                connection_id=conn.id,
                tenant=conn.tenant,
                prefix=conn.import_prefix,
                rejected=self.state.import_rejections.pairs(conn.id),
                stop=lambda: self.state.transfers.cancel_requested(record.id),
                into=done,
            )
        except Exception as exc:
            message = exc.message if isinstance(exc, ByobError) else f"{type(exc).__name__}: {exc}"
            now = self.adapters.clock()
            # The files it rejected before failing stay rejected: kept, so that later runs skip
            # them until retried, and told now, as no later run finds them again.
            with self.state.atomic() as tx:
                self._keep_progress(tx, record, done)
                self._keep_files(tx, conn, record.id, done, now=now)
                tx.transfers.fail(record.id, message, now=now)
            raise

        now = self.adapters.clock()
        if done.stopped:
            with self.state.atomic() as tx:
                self._keep_progress(tx, record, done)
                self._keep_files(tx, conn, record.id, done, now=now)
                tx.transfers.cancelled(record.id, now=now)
            cancelled = self.state.transfers.get(record.id)
            self.adapters.events.emit(
                Event.TRANSFER_CANCELLED,
                about(conn) | {"model": conn.import_name, "transfer": transfer_view(cancelled)},
            )
            return TransferResult(record=cancelled, resumed=False)

        def within(tx: Any, finished: TransferRecord) -> None:
            self.adapters.events.emit(
                Event.IMPORT_SUCCEEDED,
                told(conn)
                | {
                    "transfer": transfer_view(finished),
                    "changed": {
                        "keys": done.changed[:TOLD_CHANGED_KEYS],
                        "total": len(done.changed),
                    },
                },
                tx=tx,
            )
            self._keep_files(tx, conn, record.id, done, now=now)

        finished = self.state.transfers.finish_import(
            record,
            counts=done.counts(),
            rows=done.rows,
            size=done.bytes,
            files=len(done.imported),
            note=summary(done),
            now=now,
            within=within,
        )
        fields = {
            "connection": conn.name,
            "tenant": conn.tenant,
            "import": conn.import_name,
            "transfer": record.id,
        }
        log.info(
            "import of %s/%s succeeded: %s",
            conn.name,
            conn.import_name,
            summary(done),
            extra={"fields": fields | {"rows": done.rows, "bytes": done.bytes} | done.counts()},
        )
        if done.changed:
            # A warning: the tenant corrected these files and their rows are not in the table.
            from byob.domain.imports import changed_skipped  # see run's first line

            log.warning(
                "import of %s/%s: %s",
                conn.name,
                conn.import_name,
                changed_skipped(done.changed, shown=TOLD_CHANGED_KEYS),
                extra={
                    "fields": fields
                    | {
                        "changed": done.changed[:TOLD_CHANGED_KEYS],
                        "changed_total": len(done.changed),
                    }
                },
            )
        return TransferResult(record=finished, resumed=False)

    def _keep_progress(self, tx: Any, record: TransferRecord, done: ImportRun) -> None:
        tx.transfers.import_progress(
            record.id,
            counts=done.counts(),
            rows=done.rows,
            size=done.bytes,
            files=len(done.imported),
        )

    def _keep_files(
        self, tx: Any, conn: Connection, transfer_id: str, done: ImportRun, *, now: datetime
    ) -> None:
        """What a run, however it ended, found of its files, in ``tx``: each rejected file
        kept (later runs skip it until retried) and told; a file loaded now forgets its
        earlier rejections (a fixed version replaced the one rejected before)."""
        from byob.domain.imports import Rejection  # see run's first line

        rejections = [
            Rejection(
                key=r.key,
                etag=r.etag,
                size=r.size,
                problems=r.problems,
                transfer_id=transfer_id,
                rejected_at=now,
            )
            for r in done.rejected
        ]
        for key in done.imported:
            tx.import_rejections.clear(conn.id, key)
        tx.import_rejections.add(conn.id, rejections, transfer_id=transfer_id)
        for r in rejections:
            self.adapters.events.emit(
                Event.IMPORT_FILE_REJECTED,
                told(conn) | {"transfer_id": transfer_id} | rejection_view(r),
                tx=tx,
            )

    # -- rejected files -------------------------------------------------------------------------

    def rejected(
        self, connection: str | Connection, *, limit: int = SHOWN_REJECTIONS
    ) -> Rejections:
        conn = self._import_connection(connection)
        items, total = self.state.import_rejections.listing(conn.id, limit=limit)
        return Rejections(items=items, total=total)

    def retry(self, connection: str | Connection, key: str, *, actor: str) -> int:
        """Forget that ``key`` was rejected, so the next run tries it again (run it now with
        `byob transfers run`); how many rejected versions of it were forgotten."""
        conn = self._import_connection(connection)
        with self.state.atomic() as tx:
            cleared = tx.import_rejections.clear(conn.id, key)
            if not cleared:
                raise NotFoundError(
                    f"connection {conn.name!r} has no rejected file {key!r}; "
                    f"`byob imports rejected {conn.name}` lists them",
                    field="key",
                )
            tx.audit.record(
                actor=actor,
                action="import.retry",
                connection_id=conn.id,
                changes={"key": [key, None]},
                now=self.adapters.clock(),
            )
        return cleared

    def _import_connection(self, connection: str | Connection) -> Connection:
        conn = (
            connection if isinstance(connection, Connection) else self.connections.get(connection)
        )
        if not conn.is_import:
            raise ConflictError(
                f"connection {conn.name!r} exports; only import connections reject files",
                field="name",
            )
        return conn


def told(conn: Connection) -> dict[str, Any]:
    """What every event of an import run says of its connection and import."""
    return about(conn) | {"import": conn.import_name, "model": conn.import_name}


def summary(done: ImportRun) -> str:
    """A run in one sentence: what it saw and what became of each object."""
    from byob.domain.imports import changed_skipped  # see ImportService.run's first line

    counts = done.counts()
    parts = [f"{counts['imported']} imported ({done.rows:,} rows)"]
    if counts["rejected"]:
        parts.append(f"{counts['rejected']} rejected")
    if done.changed:
        parts.append(changed_skipped(done.changed))
    if done.rejected_before:
        parts.append(f"{len(done.rejected_before)} rejected before, waiting for a retry")
    if done.already:
        parts.append(f"{len(done.already)} loaded by another run meanwhile")
    files = "1 file" if counts["seen"] == 1 else f"{counts['seen']} files"
    return f"{files} seen: " + ", ".join(parts)


def rejections_view(rejections: Rejections) -> dict[str, Any]:
    return {"items": [rejection_view(r) for r in rejections.items], "total": rejections.total}


def rejection_view(r: Rejection) -> dict[str, Any]:
    from byob.domain.imports import problem_dict  # not at start-up: every command loads this module

    return {
        "key": r.key,
        "etag": r.etag,
        "size": r.size,
        "rejected_at": r.rejected_at,
        "transfer_id": r.transfer_id,
        "problems": [problem_dict(p) for p in r.problems],
        "message": r.first_problem(),
    }
