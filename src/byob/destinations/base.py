"""The destination port: streamed object uploads that become visible atomically."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable


class ObjectWriter(ABC):
    """One object being written. Nothing is visible until ``commit``; ``abort`` leaves nothing."""

    upload_id: str | None = None  # set once the destination has started an upload

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def commit(self) -> int:
        """Make the object visible; returns its size in bytes."""

    @abstractmethod
    def abort(self) -> None: ...

    # pyarrow's writer treats any object with write/flush/closed as a file.
    closed = False

    def flush(self) -> None:  # bytes go out in write(); nothing to flush
        return None


class Destination(ABC):
    """A bucket (or directory) with byob's layout under a prefix."""

    # Whether an open object holds its unsent bytes in memory (S3's multipart parts) rather
    # than on disk: many objects open at once then want spooling (destinations/spool.py).
    buffers_in_memory = False

    @abstractmethod
    def open_writer(
        self, key: str, *, on_started: Callable[[str], None] | None = None
    ) -> ObjectWriter:
        """Start an object; ``on_started(upload_id)`` runs before any byte can be stored, so a
        killed process's leftover upload can be found and aborted by the retry."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Write a small object in one request (overwrites)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an upload a killed process left behind (no-op if it is already gone)."""

    @abstractmethod
    def url(self, key: str) -> str: ...
