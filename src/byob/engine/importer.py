"""One import run for one connection: list the base path, load each new object of the import
exactly once (key order), and say what happened to every object — loaded, already there,
changed but skipped, refused for its size, or rejected with its first bad rows. A bad file (a
row that does not parse, or one the table refuses: NOT NULL, CHECK, UNIQUE, too long) never
blocks the good ones after it; an AWS failure or a database error that is no row's fault (the
server gone, a full disk) stops the run (the objects not yet loaded are simply picked up by the
next one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import IO, Protocol

import pyarrow as pa

from byob.domain.imports import (
    ImportFormat,
    ImportSpec,
    ListedObject,
    Loaded,
    RowProblem,
    is_gzip,
    plan_imports,
)
from byob.engine.import_files import CsvLines, read_import_chunks
from byob.errors import FileRejectedError


class ImportObjects(Protocol):
    def list(self, prefix: str) -> list[ListedObject]: ...

    def open(
        self, obj: ListedObject, *, seekable: bool = False
    ) -> AbstractContextManager[IO[bytes]]: ...


class ImportTarget(Protocol):
    """Where the rows go (sources.import_target.PostgresImportTarget)."""

    def ensure_ledger(self) -> None: ...

    def check(self, spec: ImportSpec) -> list[str]: ...

    def imported(self, connection_id: str) -> dict[str, str]: ...

    def load(
        self,
        spec: ImportSpec,
        batches: Iterable[pa.RecordBatch | CsvLines],
        *,
        connection_id: str,
        tenant: str,
        key: str,
        etag: str,
        size: int,
    ) -> Loaded: ...


@dataclass(frozen=True)
class Rejected:
    key: str
    problems: tuple[RowProblem, ...]
    etag: str = ""
    size: int = 0


@dataclass
class ImportRun:
    seen: int = 0
    imported: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # another worker loaded it meanwhile
    changed: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    rejected_before: list[str] = field(default_factory=list)  # waiting for a retry
    rows: int = 0
    bytes: int = 0
    stopped: bool = False  # asked to stop (cancelled) before every object was loaded

    def counts(self) -> dict[str, int]:
        """What happened to the objects, as history and webhooks report it."""
        return {
            "seen": self.seen,
            "imported": len(self.imported),
            "rejected": len(self.rejected),
            "skipped": len(self.changed) + len(self.rejected_before),
            "already": len(self.already),
        }


def run_import(
    spec: ImportSpec,
    objects: ImportObjects,
    target: ImportTarget,
    *,
    connection_id: str,
    tenant: str,
    prefix: str,
    rejected: frozenset[tuple[str, str]] = frozenset(),
    stop: Callable[[], bool] = lambda: False,
    into: ImportRun | None = None,
) -> ImportRun:
    """``prefix``: the connection's base path with its trailing "/" ("" for the whole bucket);
    ``rejected``: (key, ETag) pairs an earlier run rejected, skipped until retried; ``stop``
    is asked before each object (a cancelled run stops between objects, each one whole).
    ``into`` is filled as objects are done, so a run that raises still says what it did."""
    plan = plan_imports(
        spec,
        objects.list(prefix),
        prefix=prefix,
        imported=target.imported(connection_id),
        rejected=rejected,
    )
    run = into if into is not None else ImportRun()
    run.seen = plan.seen
    run.changed = [o.key for o in plan.changed]
    run.rejected_before = [o.key for o in plan.rejected_before]
    run.rejected.extend(
        Rejected(
            obj.key,
            (RowProblem(line=None, column=None, value=None, reason=why),),
            obj.etag,
            obj.size,
        )
        for obj, why in plan.too_big
    )
    for obj in plan.load:
        if stop():
            run.stopped = True
            break
        try:
            with objects.open(obj, seekable=spec.format is ImportFormat.PARQUET) as stream:
                batches = read_import_chunks(
                    stream, spec, gzip=is_gzip(obj.key), size=obj.size, as_is=True
                )
                loaded = target.load(
                    spec,
                    batches,
                    connection_id=connection_id,
                    tenant=tenant,
                    key=obj.key,
                    etag=obj.etag,
                    size=obj.size,
                )
        except FileRejectedError as exc:  # from the reader, or from the table (import_target)
            run.rejected.append(Rejected(obj.key, exc.problems, obj.etag, obj.size))
            continue
        if loaded.already:
            run.already.append(obj.key)
        else:
            run.imported.append(obj.key)
            run.rows += loaded.rows
            run.bytes += obj.size
    return run
