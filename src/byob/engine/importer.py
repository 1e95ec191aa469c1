"""One import run for one connection: list the base path, load each new object of the import
exactly once (key order), and say what happened to every object — loaded, already there,
changed but skipped, refused for its size, or rejected with its first bad rows. A bad file
never blocks the good ones after it; an AWS or database failure stops the run (the objects not
yet loaded are simply picked up by the next one)."""

from __future__ import annotations

from collections.abc import Iterable
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
from byob.engine.import_files import read_import_file
from byob.errors import FileRejectedError


class ImportObjects(Protocol):
    def list(self, prefix: str) -> list[ListedObject]: ...

    def open(
        self, obj: ListedObject, *, seekable: bool = False
    ) -> AbstractContextManager[IO[bytes]]: ...


class ImportTarget(Protocol):
    """Where the rows go (sources.import_target.PostgresImportTarget)."""

    def imported(self, connection_id: str) -> dict[str, str]: ...

    def load(
        self,
        spec: ImportSpec,
        batches: Iterable[pa.RecordBatch],
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


@dataclass
class ImportRun:
    seen: int = 0
    imported: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # another worker loaded it meanwhile
    changed: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0


def run_import(
    spec: ImportSpec,
    objects: ImportObjects,
    target: ImportTarget,
    *,
    connection_id: str,
    tenant: str,
    prefix: str,
) -> ImportRun:
    """``prefix``: the connection's base path with its trailing "/" ("" for the whole bucket)."""
    plan = plan_imports(
        spec, objects.list(prefix), prefix=prefix, imported=target.imported(connection_id)
    )
    run = ImportRun(seen=plan.seen, changed=[o.key for o in plan.changed])
    run.rejected.extend(
        Rejected(obj.key, (RowProblem(line=None, column=None, value=None, reason=why),))
        for obj, why in plan.too_big
    )
    for obj in plan.load:
        try:
            with objects.open(obj, seekable=spec.format is ImportFormat.PARQUET) as stream:
                batches = read_import_file(stream, spec, gzip=is_gzip(obj.key), size=obj.size)
                loaded = target.load(
                    spec,
                    batches,
                    connection_id=connection_id,
                    tenant=tenant,
                    key=obj.key,
                    etag=obj.etag,
                    size=obj.size,
                )
        except FileRejectedError as exc:
            run.rejected.append(Rejected(obj.key, exc.problems))
            continue
        if loaded.already:
            run.already.append(obj.key)
        else:
            run.imported.append(obj.key)
            run.rows += loaded.rows
            run.bytes += obj.size
    return run
