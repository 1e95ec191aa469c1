"""Transfer use cases, and the one path every transfer takes — whoever asks for it (the CLI,
the embedded worker threads, Procrastinate workers, the API's and the pages' run-now):

1. the connection may transfer now (`Connection.may_transfer`), else `TransfersHeld`;
2. the engine plans and runs the model's windows (engine/transfer.py: exactly once);
3. the outcome is told the same way: a success is logged and sent to the webhook; a final
   failure is sent to the webhook with its verdict, and a permission or configuration
   failure marks the connection failing, which holds its transfers until it validates again.
History and metrics come from the state store the engine writes, so they agree by
construction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from byob.domain import ids
from byob.domain.connections import Connection
from byob.domain.failures import Verdict, classify, is_final
from byob.domain.models import ModelSpec
from byob.domain.paging import Page, cursors
from byob.domain.transfers import (
    FileRecord,
    TransferFilter,
    TransferRecord,
    TransferStatus,
    cancel_refusal,
    cancellable,
    parse_since,
    parse_statuses,
)
from byob.engine.fanout import FINISHING_THREADS, FanOut
from byob.engine.ports import Catalog
from byob.engine.transfer import Progress, TransferResult
from byob.errors import ByobError, ConflictError, InvalidFieldError, NotFoundError, TransferError
from byob.services.connections import ConnectionService
from byob.services.events import Event, about
from byob.services.imports import ImportService
from byob.services.ports import Adapters
from byob.services.views import transfer_view

log = logging.getLogger("byob.transfers")


class TransfersHeld(ConflictError):
    """The connection may not transfer now (not active, or failing)."""


@dataclass(frozen=True, kw_only=True)
class Triggered:
    planned: list[TransferRecord]  # windows fixed now (embedded workers)
    busy: list[str]  # models skipped: a transfer of them is already running or waiting
    queued: list[str] = field(default_factory=list)  # models queued for distributed workers


@dataclass(frozen=True, kw_only=True)
class Cancellation:
    record: TransferRecord  # as it is now: cancelled, or with its cancel requested
    already: bool  # it was cancelled before this request, which changed nothing


class Dispatcher(Protocol):
    """Runs transfers in the background: threads in this process, or a distributed queue."""

    def trigger(self, conn: Connection, models: list[str], *, full_refresh: bool) -> Triggered: ...

    def queue_depth(self) -> tuple[int, float]: ...

    def shutdown(self, *, wait: bool = True) -> None: ...


@runtime_checkable
class BatchDispatcher(Dispatcher, Protocol):
    """A dispatcher that also queues many connections' scheduled runs in one round trip."""

    def trigger_many(self, runs: list[tuple[Connection, list[str]]]) -> list[Triggered]: ...


@dataclass(frozen=True, kw_only=True)
class RunAll:
    """What `run_all` did: every connection it ran, the transfers, and what failed."""

    connections: list[Connection]
    results: list[tuple[Connection, TransferResult]]
    failures: list[tuple[Connection, ByobError]]


class TransferService:
    def __init__(
        self, adapters: Adapters, connections: ConnectionService, imports: ImportService
    ) -> None:
        self.adapters = adapters
        self.state = adapters.state
        self.connections = connections
        self.imports = imports
        self.dispatcher: Dispatcher | None = None  # set by the runtime that has workers

    # -- reading --------------------------------------------------------------------------------

    def get(self, transfer_id: str) -> TransferRecord:
        """A transfer by its ID or, git-style, a start of it no other transfer's ID has."""
        return self.state.transfers.get(self.resolve_id(transfer_id))

    def resolve_id(self, ref: str) -> str:
        """The transfer ID that ``ref`` (a whole ID or a unique start of one) names."""
        return ids.resolve("transfer", ref, self.state.transfers.ids_starting_with)

    def files(self, record: TransferRecord) -> list[FileRecord]:
        return self.state.transfers.files(record.id)

    def history(
        self,
        connection: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> tuple[Connection, Page[TransferRecord]]:
        """A page of the connection's transfers, newest first; ``after``/``before`` are a
        previous page's ``next``/``previous``."""
        start_after, end_before = cursors(after, before)
        conn = self.connections.get(connection)
        return conn, self.state.transfers.page(
            TransferFilter(connection_id=conn.id), after=start_after, before=end_before, limit=limit
        )

    def listing(
        self,
        *,
        connection: str | None = None,
        tenant: str | None = None,
        statuses: Iterable[str] = (),
        since: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> Page[TransferRecord]:
        """A page of every connection's transfers, newest first, narrowed to a connection
        (name, ID or tenant/name), a tenant, any of ``statuses``, and those created at or
        after ``since`` (ISO 8601); ``after``/``before`` are a previous page's cursors."""
        start_after, end_before = cursors(after, before)
        which = TransferFilter(
            connection_id=self.connections.get(connection, field="connection").id
            if connection
            else None,
            tenant=tenant,
            statuses=parse_statuses(statuses),
            since=parse_since(since) if since else None,
        )
        return self.state.transfers.page(which, after=start_after, before=end_before, limit=limit)

    def specs(self, model: str | None = None) -> list[ModelSpec]:
        """The offered models (``model``: that one, refused when it is not offered)."""
        models_file = self.adapters.models_file
        return [models_file.offered_model(model)] if model else list(models_file.offered_models)

    def model_names(self, conn: Connection, model: str | None = None) -> list[str]:
        """What a run of the connection covers: every model (or ``model``) for an export, its
        one import for an import connection."""
        if not conn.is_import:
            received = conn.receives([s.name for s in self.specs()])
            if model is None:
                return received
            self.specs(model)  # a model the models file offers, or refused saying why
            if model not in received:
                raise InvalidFieldError(
                    f"connection {conn.name!r} does not receive model {model!r} (it receives "
                    f"{', '.join(received) or 'none'}); add it with `byob connections update "
                    f"{conn.name} --models ...`",
                    field="model",
                )
            return [model]
        if model and model != conn.import_name:
            raise InvalidFieldError(
                f"connection {conn.name!r} imports {conn.import_name!r}; it has no model {model!r}",
                field="model",
            )
        return [conn.import_name]

    def queue_depth(self) -> tuple[int, float]:
        """Transfers waiting for a worker, and the oldest one's age in seconds."""
        return self.dispatcher.queue_depth() if self.dispatcher is not None else (0, 0.0)

    def runnable(self) -> list[Connection]:
        """Every connection that may transfer now."""
        return [c for c in self.connections.all() if c.may_transfer]

    def transferable(self, connection: str) -> Connection:
        """The connection, if it may transfer now."""
        conn = self.connections.get(connection, field="connection")
        refusal = conn.transfer_refusal()
        if refusal is not None:
            raise TransfersHeld(refusal)
        return conn

    # -- running --------------------------------------------------------------------------------

    def run(
        self,
        connection: str,
        *,
        model: str | None = None,
        full_refresh: bool = False,
        actor: str = "cli",
        progress: Callable[[str], Progress | None] | None = None,
    ) -> list[TransferResult]:
        """Run now, in this thread: every model (or one), interrupted windows first; stops at
        the first model that fails."""
        conn = self.transferable(connection)
        names = self.model_names(conn, model)
        self._audit_trigger(conn, actor, model=model, full_refresh=full_refresh)
        results: list[TransferResult] = []
        for name in names:
            # Each model reads the connection again: one paused (or failing) meanwhile holds
            # the models not yet run.
            results += self.run_model(
                conn.id,
                name,
                full_refresh=full_refresh,
                progress=progress(name) if progress and not conn.is_import else None,
            )
        return results

    def run_all(
        self,
        *,
        model: str | None = None,
        full_refresh: bool = False,
        parallel: int = 2,
        actor: str = "cli",
        on_connection_done: Callable[[Connection], None] | None = None,
    ) -> RunAll:
        """Every connection that may transfer. Export connections run model by model, one
        scan of the model's table feeding all of them (`_fan_out`, up to
        ``fan_out_connections`` at a time); import connections, and every connection when the
        fan-out is set to 1, run ``parallel`` at a time (sharing one transfer's buffers). A
        connection that fails does not stop the others; its later models wait for its next
        run, as they would in `run`."""
        conns = self.runnable()
        results: list[tuple[Connection, TransferResult]] = []
        failures: list[tuple[Connection, ByobError]] = []
        fanned = (
            [c for c in conns if not c.is_import]
            if self.adapters.settings.fan_out_connections > 1
            else []
        )
        if fanned:
            # Two members finish at once: they split the buffers (parts, row groups, budget).
            self.adapters.concurrent_transfers = FINISHING_THREADS
            self._run_fanned(
                fanned,
                model=model,
                full_refresh=full_refresh,
                actor=actor,
                results=results,
                failures=failures,
            )
            for conn in fanned:
                if on_connection_done is not None:
                    on_connection_done(conn)
        self.adapters.concurrent_transfers = parallel

        def one(conn: Connection) -> None:
            try:
                done = self.run(conn.id, model=model, full_refresh=full_refresh, actor=actor)
                results.extend((conn, r) for r in done)
            except ByobError as exc:
                failures.append((conn, exc))
            finally:
                if on_connection_done is not None:
                    on_connection_done(conn)

        alone = [c for c in conns if c not in fanned]
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="byob-run") as pool:
            list(pool.map(one, alone))
        return RunAll(connections=conns, results=results, failures=failures)

    def _run_fanned(
        self,
        conns: list[Connection],
        *,
        model: str | None,
        full_refresh: bool,
        actor: str,
        results: list[tuple[Connection, TransferResult]],
        failures: list[tuple[Connection, ByobError]],
    ) -> None:
        """Model by model (in the models file's order), each connection receiving it in a
        fan-out; a connection whose model fails takes no part in its later models."""
        received: dict[str, list[str]] = {}
        for conn in conns:
            try:
                received[conn.id] = self.model_names(conn, model)
            except ByobError as exc:
                failures.append((conn, exc))
                continue
            self._audit_trigger(conn, actor, model=model, full_refresh=full_refresh)
        stopped: set[str] = set()
        followed: set[str] = set()  # connections whose catalog followed their selection
        size = self.adapters.settings.fan_out_connections
        for spec in self.specs(model):
            members = [
                c for c in conns if spec.name in received.get(c.id, ()) and c.id not in stopped
            ]
            for start in range(0, len(members), size):
                group = members[start : start + size]
                for conn, outcome in self._fan_out(spec, group, full_refresh, followed):
                    if isinstance(outcome, ByobError):
                        failures.append((conn, outcome))
                        stopped.add(conn.id)
                    else:
                        results.append((conn, outcome))

    def run_fanned(
        self, model: str, conns: list[Connection], *, max_attempts: int = 1
    ) -> list[tuple[Connection, TransferResult | ByobError]]:
        """Scheduled runs of one model for several connections from one scan (the embedded
        workers' page of due connections): each connection's outcome, a failure told as the
        first of ``max_attempts`` (a worker retries it alone, `run_model` with attempt 2).
        A connection that may no longer transfer, or no longer receives the model, is held
        (`TransfersHeld`) as `run_model` would hold it; so is one deleted since it was due."""
        spec = self.adapters.models_file.offered_model(model)
        offered = [s.name for s in self.specs()]
        outcomes: list[tuple[Connection, TransferResult | ByobError]] = []
        ready = []
        for conn in conns:
            try:
                current = self.transferable(conn.id)
            except TransfersHeld as exc:
                outcomes.append((conn, exc))
                continue
            except NotFoundError:
                # Deleted while its group waited for a worker: only it is left out (raising
                # would drop the whole group's run), and there is nothing to retry or tell.
                outcomes.append((conn, TransfersHeld(f"connection {conn.name!r} was deleted")))
                continue
            if model not in current.receives(offered):
                held = f"connection {conn.name!r} no longer receives model {model!r}"
                outcomes.append((current, TransfersHeld(held)))
                continue
            ready.append(current)
        return outcomes + self._fan_out(spec, ready, False, set(), max_attempts=max_attempts)

    def _fan_out(
        self,
        spec: ModelSpec,
        conns: list[Connection],
        full_refresh: bool,
        followed: set[str],
        *,
        max_attempts: int = 1,
    ) -> list[tuple[Connection, TransferResult | ByobError]]:
        """One model for several connections from one scan (engine/fanout.py), each outcome
        told as `run_model` tells it (as attempt 1 of ``max_attempts``)."""
        if not conns:
            return []
        outcomes: list[tuple[Connection, TransferResult | ByobError]] = []
        offered = [s.name for s in self.specs()]
        try:
            with self.adapters.source() as src:
                runners = []
                for conn in conns:
                    try:
                        runner = self.adapters.runner(conn, src, on_commit=self._succeeded(conn))
                    except ByobError as exc:  # e.g. a secret that no longer opens
                        self._failed(
                            conn, spec.name, exc, record=None, attempt=1, max_attempts=max_attempts
                        )
                        outcomes.append((conn, exc))
                        continue
                    if conn.id not in followed:
                        followed.add(conn.id)
                        self._follow_selection(conn, runner.catalog, conn.receives(offered))
                    runners.append(runner)
                fan = FanOut(
                    source=src,
                    runners=runners,
                    buffer_bytes=self.adapters.engine_options().fan_out_buffer_bytes,
                )
                members = fan.run(spec, full_refresh=full_refresh)
        except Exception as exc:  # the model cannot be read at all: it fails for every member
            error = (
                exc
                if isinstance(exc, ByobError)
                else TransferError(
                    f"transfer of model {spec.name!r} failed: {type(exc).__name__}: {exc}"
                )
            )
            done = {c.id for c, _ in outcomes}
            for conn in conns:
                if conn.id not in done:
                    self._failed(
                        conn, spec.name, error, record=None, attempt=1, max_attempts=max_attempts
                    )
                    outcomes.append((conn, error))
            return outcomes
        for member in members:
            for result in member.results:
                self._finished(member.conn, result.record)
                outcomes.append((member.conn, result))
            if member.error is not None:
                self._failed(
                    member.conn,
                    spec.name,
                    member.error,
                    record=member.failed_record,
                    attempt=1,
                    max_attempts=max_attempts,
                )
                outcomes.append((member.conn, member.error))
        return outcomes

    def plan(
        self, conn: Connection, model: str, *, full_refresh: bool = False
    ) -> list[TransferRecord]:
        """Fix the windows of one model now, to run later (`run_model` runs them): the caller
        gets transfer IDs at once. A failure here is told like any transfer's."""
        if conn.is_import:
            return [self.imports.next_record(conn)]
        spec = self.adapters.models_file.offered_model(model)
        try:
            with self.adapters.source() as src:
                _, records = self.adapters.runner(conn, src).prepare(
                    spec, full_refresh=full_refresh
                )
        except Exception as exc:
            self._failed(conn, model, exc, record=None, attempt=1, max_attempts=1)
            raise
        return records

    def run_model(
        self,
        connection: str,
        model: str,
        *,
        full_refresh: bool = False,
        attempt: int = 1,
        max_attempts: int = 1,
        progress: Progress | None = None,
    ) -> list[TransferResult]:
        """The one transfer path: one model of one connection, every pending window then a new
        one (a retry, ``attempt`` > 1, finishes the windows its first attempt fixed and adds
        none). Raises the failure after telling it; ``max_attempts`` says whether a retry
        follows, so the webhook hears of a failure once, when it is final."""
        conn = self.transferable(connection)
        if conn.is_import:
            return [self._run_import(conn, attempt=attempt, max_attempts=max_attempts)]
        spec = self.adapters.models_file.offered_model(model)
        received = conn.receives([s.name for s in self.specs()])
        if model not in received:
            # Queued before the model was deselected: the connection no longer receives it.
            raise TransfersHeld(f"connection {conn.name!r} no longer receives model {model!r}")
        current: TransferRecord | None = None
        results: list[TransferResult] = []
        try:
            with self.adapters.source() as src:
                runner = self.adapters.runner(conn, src, on_commit=self._succeeded(conn))
                self._follow_selection(conn, runner.catalog, received)
                pending = self.state.transfers.pending(conn.id, model) if attempt > 1 else []
                if pending:
                    resolved, records = runner.resolve(spec), pending
                else:
                    resolved, records = runner.prepare(spec, full_refresh=full_refresh)
                for record in records:  # in order; the first failure stops the rest
                    current = record
                    result = runner.execute(resolved, record, progress=progress)
                    results.append(result)
                    self._finished(conn, result.record)
        except Exception as exc:
            self._failed(
                conn, model, exc, record=current, attempt=attempt, max_attempts=max_attempts
            )
            raise
        return results

    def _follow_selection(
        self, conn: Connection, catalog: Catalog | None, received: list[str]
    ) -> None:
        """The catalog has tables for the models the connection receives only: a deselected
        (or no longer offered) model's table and view go, its files stay. Checked at every run,
        so a drop that fails (logged, the transfer goes on) is retried by the next."""
        if catalog is None:
            return
        try:
            dropped = catalog.keep_only(received)
        except ByobError as exc:
            log.warning(
                "could not remove the Glue tables of models %s no longer receives: %s",
                conn.name,
                exc.message,
                extra={"fields": {"connection": conn.name, "tenant": conn.tenant}},
            )
            return
        if dropped:
            log.info(
                "removed Glue tables of models %s no longer receives: %s",
                conn.name,
                ", ".join(dropped),
                extra={
                    "fields": {"connection": conn.name, "tenant": conn.tenant, "dropped": dropped}
                },
            )

    def _run_import(self, conn: Connection, *, attempt: int, max_attempts: int) -> TransferResult:
        """An import connection's run (services/imports.py), told like a transfer's."""
        record: TransferRecord | None = None
        try:
            record = self.imports.next_record(conn)
            return self.imports.run(conn, record)
        except Exception as exc:
            self._failed(
                conn,
                conn.import_name,
                exc,
                record=record,
                attempt=attempt,
                max_attempts=max_attempts,
            )
            raise

    def trigger(
        self, connection: str, *, model: str | None = None, full_refresh: bool = False, actor: str
    ) -> Triggered:
        """Run in the background (the API's and the pages' run-now)."""
        conn = self.transferable(connection)
        models = self.model_names(conn, model)
        if self.dispatcher is None:
            raise ConflictError("this server runs no workers; run `byob transfers run` instead")
        self._audit_trigger(conn, actor, model=model, full_refresh=full_refresh)
        return self.dispatcher.trigger(conn, models, full_refresh=full_refresh)

    def dispatch_scheduled(self, conn: Connection) -> Triggered:
        """A scheduled run of every model (the scheduler found it due)."""
        if self.dispatcher is None:
            raise ConflictError("no workers to dispatch scheduled transfers to")
        return self.dispatcher.trigger(conn, self.model_names(conn), full_refresh=False)

    @property
    def dispatches_in_batches(self) -> bool:
        """Whether `dispatch_scheduled_many` queues a page in one go (distributed workers)."""
        return isinstance(self.dispatcher, BatchDispatcher)

    def dispatch_scheduled_many(self, conns: list[Connection]) -> list[Triggered]:
        """Scheduled runs of many connections at once: all of them queued, or (raising) none."""
        if not isinstance(self.dispatcher, BatchDispatcher):
            raise ConflictError("no workers to dispatch scheduled transfers to in batches")
        return self.dispatcher.trigger_many([(c, self.model_names(c)) for c in conns])

    def cancel(self, transfer_id: str, *, actor: str) -> TransferRecord:
        """The transfer after `request_cancel`, for callers that show it either way."""
        return self.request_cancel(transfer_id, actor=actor).record

    def request_cancel(self, transfer_id: str, *, actor: str) -> Cancellation:
        """A queued transfer is cancelled at once; a running one stops at its next batch and
        removes its files; a failed one when a run next takes it up. Its window is delivered
        by the next transfer. A succeeded transfer is refused; one cancelled, or whose cancel
        was asked already, is left as it is (asking twice is no error, and not told twice)."""
        transfer_id = self.resolve_id(transfer_id)
        now = self.adapters.clock()
        with self.state.atomic() as tx:
            record = tx.transfers.get(transfer_id)
            refusal = cancel_refusal(record)
            if refusal is not None:
                raise ConflictError(refusal)
            if not cancellable(record):
                return Cancellation(record=record, already=True)
            record = tx.transfers.request_cancel(transfer_id, now=now)
            tx.audit.record(
                actor=actor,
                action="transfer.cancel",
                connection_id=record.connection_id,
                changes={"transfer": record.id, "model": record.model},
                now=now,
            )
        return Cancellation(record=record, already=False)

    # -- telling the outcome --------------------------------------------------------------------

    def _succeeded(self, conn: Connection) -> Callable[[Any, TransferRecord], None]:
        """The event of a succeeded transfer, written in the transaction that commits it."""

        def record(tx: Any, committed: TransferRecord) -> None:
            self.adapters.events.emit(
                Event.TRANSFER_SUCCEEDED,
                about(conn) | {"model": committed.model, "transfer": transfer_view(committed)},
                tx=tx,
            )

        return record

    def _finished(self, conn: Connection, record: TransferRecord) -> None:
        seconds = (
            (record.finished_at - record.started_at).total_seconds() if record.finished_at else 0.0
        )
        fields = _log_fields(conn, record.model) | {
            "transfer": record.id,
            "kind": record.type.value,
            "window_low": record.window.low.isoformat() if record.window.low else None,
            "window_high": record.window.high.isoformat(),
            "rows": record.rows,
            "bytes": record.bytes,
            "files": record.files,
            "seconds": round(seconds, 3),
            "status": record.status.value,
        }
        if record.status is TransferStatus.SUCCEEDED:
            log.info(
                "transfer of %s/%s succeeded: %d rows in %d files (%d bytes) in %.1f s",
                conn.name,
                record.model,
                record.rows,
                record.files,
                record.bytes,
                seconds,
                extra={"fields": fields},
            )
            return  # its event was written with it (_succeeded)
        log.info(
            "transfer of %s/%s %s", conn.name, record.model, record.status, extra={"fields": fields}
        )
        self.adapters.events.emit(
            Event.TRANSFER_CANCELLED,
            about(conn) | {"model": record.model, "transfer": transfer_view(record)},
        )

    def _failed(
        self,
        conn: Connection,
        model: str,
        exc: BaseException,
        *,
        record: TransferRecord | None,
        attempt: int,
        max_attempts: int,
    ) -> None:
        verdict = classify(exc)
        final = is_final(verdict, attempt=attempt, max_attempts=max_attempts)
        message = exc.message if isinstance(exc, ByobError) else f"{type(exc).__name__}: {exc}"
        log.warning(
            "transfer of %s/%s failed (attempt %d of %d, %s%s): %s",
            conn.name,
            model,
            attempt,
            max_attempts,
            verdict,
            "" if final else ", will retry",
            message,
            extra={
                "fields": _log_fields(conn, model)
                | {
                    "transfer": record.id if record else None,
                    "attempt": attempt,
                    "verdict": verdict.value,
                    "final": final,
                }
            },
        )
        if final:
            latest = self.state.transfers.get(record.id) if record is not None else None
            self.adapters.events.emit(
                Event.IMPORT_FAILED if conn.is_import else Event.TRANSFER_FAILED,
                about(conn)
                | {
                    "model": model,
                    "transfer": transfer_view(latest) if latest else None,
                    "error": message,
                    "verdict": verdict.value,
                    "attempt": attempt,
                    # Sent only once no retry follows: the next run of the model starts from
                    # this window again (the record then says it finished it).
                    "retrying": False,
                },
            )
        if verdict is Verdict.CONNECTION_FAILING:
            self.connections.mark_failing(conn, check="transfer", message=message)

    def _audit_trigger(
        self, conn: Connection, actor: str, *, model: str | None, full_refresh: bool
    ) -> None:
        self.state.audit.record(
            actor=actor,
            action="transfer.trigger",
            connection_id=conn.id,
            changes={"connection": conn.name, "model": model, "full_refresh": full_refresh},
            now=self.adapters.clock(),
        )


def _log_fields(conn: Connection, model: str) -> dict[str, Any]:
    return {"connection": conn.name, "tenant": conn.tenant, "model": model}


def should_retry(exc: BaseException, *, attempt: int, max_attempts: int) -> bool:
    """Whether a worker runs this model again after ``exc`` (the rule `run_model` tells by)."""
    return not is_final(classify(exc), attempt=attempt, max_attempts=max_attempts)


def describe(results: list[TransferResult]) -> list[dict[str, Any]]:
    return [
        transfer_view(r.record) | {"resumed": r.resumed, "held_back_rows": r.held_back}
        for r in results
    ]
