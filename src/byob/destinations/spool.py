"""Objects written to a local temporary file first and sent whole when committed: for many
objects open at once (a fan-out's connections), where a destination that buffers multipart
parts in memory would hold a part for each of them."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from byob.destinations.base import Destination, ObjectWriter

_CHUNK_BYTES = 1 << 20


class SpooledDestination(Destination):
    """``destination`` with its streamed objects spooled to disk until they are committed;
    small objects (``put``) and everything else go straight through."""

    def __init__(self, destination: Destination) -> None:
        self.inner = destination

    def open_writer(
        self, key: str, *, on_started: Callable[[str], None] | None = None
    ) -> ObjectWriter:
        return _SpooledWriter(self.inner, key, on_started)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.inner.put(key, data, content_type=content_type)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.inner.abort_upload(key, upload_id)

    def url(self, key: str) -> str:
        return self.inner.url(key)


class _SpooledWriter(ObjectWriter):
    """Nothing reaches the destination before ``commit``, which streams the file to it in
    chunks: the upload starts (and ``on_started`` records its ID) only then."""

    def __init__(
        self, inner: Destination, key: str, on_started: Callable[[str], None] | None
    ) -> None:
        self._inner = inner
        self._key = key
        self._on_started = on_started
        self._file = tempfile.TemporaryFile(prefix="byob-spool-")  # noqa: SIM115 - closed below
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._size += len(data)

    def commit(self) -> int:
        target = self._inner.open_writer(self._key, on_started=self._on_started)
        try:
            self._file.seek(0)
            while chunk := self._file.read(_CHUNK_BYTES):
                target.write(chunk)
            target.commit()
        except BaseException:
            target.abort()
            raise
        finally:
            self._file.close()
        self.upload_id = target.upload_id
        return self._size

    def abort(self) -> None:
        self._file.close()
