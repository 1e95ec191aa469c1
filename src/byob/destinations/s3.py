"""S3 through boto3: multipart uploads streamed while the next part is encoded."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.destinations.aws_errors import explain
from byob.destinations.base import Destination, ObjectWriter
from byob.domain.layout import join
from byob.errors import DestinationError

_PARTS_IN_FLIGHT = 2  # with the part being filled: at most 3 parts of memory per file


class S3Destination(Destination):
    buffers_in_memory = True  # a part being filled, and up to two in flight, per object

    def __init__(
        self,
        client_of: Callable[[], Any],
        *,
        bucket: str,
        region: str,
        who: str,
        part_bytes: int = 16 << 20,
    ) -> None:
        # Asked for at each use, not held: a fan-out keeps hundreds of destinations open at
        # once, and the connections' clients (~0.5 MB each) stay in a bounded cache instead.
        self._client_of = client_of
        self.bucket = bucket
        self.region = region
        self.who = who  # "role byob-acme-3f2a" or "the access key's user", for messages
        self.part_bytes = part_bytes

    @property
    def client(self) -> Any:
        return self._client_of()

    def error(self, exc: BaseException, action: str, key: str) -> DestinationError:
        return explain(
            exc,
            action=action,
            resource=self.url(key),
            who=self.who,
            bucket=self.bucket,
            region=self.region,
        )

    def object_arn_pattern(self, prefix: str) -> str:
        return f"arn:aws:s3:::{join(self.bucket, prefix)}/*"

    def open_writer(
        self, key: str, *, on_started: Callable[[str], None] | None = None
    ) -> ObjectWriter:
        return _MultipartWriter(self, key, on_started)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, "s3:PutObject", key) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, "s3:DeleteObject", key) from exc

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                return
            raise self.error(exc, "s3:AbortMultipartUpload", key) from exc
        except BotoCoreError as exc:
            raise self.error(exc, "s3:AbortMultipartUpload", key) from exc

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


class _MultipartWriter(ObjectWriter):
    """Buffers encoded bytes into parts; a file smaller than one part is a single PutObject.

    Parts upload on the writer's own threads, which end with the file (commit or abort): a
    destination holds no threads, so nothing is left running when a transfer is dropped."""

    def __init__(
        self, dest: S3Destination, key: str, on_started: Callable[[str], None] | None
    ) -> None:
        self._dest = dest
        self._on_started = on_started
        self._key = key
        self._buffer = bytearray()
        self._parts: list[Future[dict[str, Any]]] = []
        self._in_flight = threading.BoundedSemaphore(_PARTS_IN_FLIGHT)
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0
        self.upload_id: str | None = None

    def write(self, data: bytes | memoryview) -> None:
        self._buffer += data
        self._size += len(data)
        if len(self._buffer) >= self._dest.part_bytes:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()

    def _send_part(self, body: bytes) -> None:
        client, bucket, key = self._dest.client, self._dest.bucket, self._key
        if self.upload_id is None:
            try:
                self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            except (ClientError, BotoCoreError) as exc:
                raise self._dest.error(exc, "s3:PutObject", key) from exc
            if self._on_started:
                self._on_started(self.upload_id)
        number = len(self._parts) + 1
        self._in_flight.acquire()  # backpressure: encoding waits when parts pile up

        def upload() -> dict[str, Any]:
            try:
                etag = client.upload_part(
                    Bucket=bucket, Key=key, UploadId=self.upload_id, PartNumber=number, Body=body
                )["ETag"]
                return {"PartNumber": number, "ETag": etag}
            finally:
                self._in_flight.release()

        # Part uploads log with the transfer's context.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=_PARTS_IN_FLIGHT, thread_name_prefix="s3-part"
            )
        self._parts.append(self._pool.submit(contextvars.copy_context().run, upload))
        # Surface a failed part now rather than after encoding the whole file.
        for done in [f for f in self._parts if f.done()]:
            self._result(done)

    def _result(self, future: Future[dict[str, Any]]) -> dict[str, Any]:
        try:
            return future.result()
        except (ClientError, BotoCoreError) as exc:
            raise self._dest.error(exc, "s3:PutObject", self._key) from exc

    def commit(self) -> int:
        client, bucket, key = self._dest.client, self._dest.bucket, self._key
        if self.upload_id is None:
            try:
                client.put_object(Bucket=bucket, Key=key, Body=bytes(self._buffer))
            except (ClientError, BotoCoreError) as exc:
                raise self._dest.error(exc, "s3:PutObject", key) from exc
            return self._size
        if self._buffer:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()
        try:
            parts = [self._result(f) for f in self._parts]
        finally:
            self._stop_uploads()
        try:
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._dest.error(exc, "s3:PutObject", key) from exc
        return self._size

    def abort(self) -> None:
        for future in self._parts:
            future.cancel()
        for future in self._parts:
            if not future.cancelled():
                with contextlib.suppress(Exception):
                    future.result()
        self._stop_uploads()
        self._buffer.clear()
        if self.upload_id is not None:
            self._dest.abort_upload(self._key, self.upload_id)

    def _stop_uploads(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
