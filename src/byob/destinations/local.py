"""A local directory with the same layout as a bucket: for trials, tests and benchmarks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from byob.destinations.base import Destination, ObjectWriter
from byob.errors import DestinationError

# What is written goes to the disk every WRITE_BEHIND_BYTES and leaves the page cache once it
# is there (PostgreSQL's `*_flush_after` settings do the same): byob runs next to the vendor's
# database, and gigabytes of Parquet that nobody reads back would otherwise push the
# database's pages out of the cache. The commit's fsync then waits for the last few MiB
# rather than the whole file (a 144 MB file: 71 → 3 ms).
WRITE_BEHIND_BYTES = 16 << 20


def _drop_cached(fd: int) -> None:
    """Start writing the file's dirty pages and drop its clean ones (those still being
    written stay, for a later call): POSIX_FADV_DONTNEED, where the platform has it."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class _LocalWriter(ObjectWriter):
    def __init__(self, final: Path, on_started: Callable[[str], None] | None) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        # A dot-prefixed name is hidden from Hive-style readers until the rename.
        self._tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
        self._final = final
        if on_started:
            on_started(self._tmp.name)
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self.upload_id = self._tmp.name
        self._size = 0
        self._unflushed = 0

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._size += len(data)
        self._unflushed += len(data)
        if self._unflushed >= WRITE_BEHIND_BYTES:
            self._file.flush()
            _drop_cached(self._file.fileno())
            self._unflushed = 0

    def commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        _drop_cached(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._final)  # atomic: readers see all of it or none
        _fsync_dir(self._final.parent)
        return self._size

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDestination(Destination):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise DestinationError(f"key {key!r} escapes the destination directory")
        return path

    def open_writer(
        self, key: str, *, on_started: Callable[[str], None] | None = None
    ) -> ObjectWriter:
        try:
            return _LocalWriter(self._path(key), on_started)
        except OSError as exc:
            raise DestinationError(f"cannot write under {self.root}: {exc}", field="path") from exc

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        writer = self.open_writer(key)
        try:
            writer.write(data)
            writer.commit()
        except OSError as exc:
            writer.abort()
            raise DestinationError(f"cannot write {self.url(key)}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot delete {self.url(key)}: {exc}") from exc

    def abort_upload(self, key: str, upload_id: str) -> None:
        (self._path(key).parent / upload_id).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return str(self.root / key)
