"""The customer's files for an import, read from their bucket with the connection's read-only
role: listed under the base path (the policy's s3:prefix condition allows exactly that
prefix) and streamed one at a time."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.destinations.aws_errors import explain
from byob.domain.imports import ListedObject

SPOOL_IN_MEMORY = 8 << 20  # a Parquet file up to this size is kept in memory, larger on disk


class S3ImportObjects:
    def __init__(self, client: Any, bucket: str, *, region: str, who: str) -> None:
        self.client = client
        self.bucket = bucket
        self.region = region
        self.who = who  # the role, as AWS error explanations name it

    def _error(self, exc: BaseException, action: str, key: str) -> Exception:
        return explain(
            exc,
            action=action,
            resource=f"s3://{self.bucket}/{key}",
            who=self.who,
            bucket=self.bucket,
            region=self.region,
        )

    def list(self, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix`` (paginated; ListObjectsV2 returns 1,000 a page)."""
        found: list[ListedObject] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                found.extend(
                    ListedObject(key=o["Key"], etag=o["ETag"].strip('"'), size=int(o["Size"]))
                    for o in page.get("Contents", [])
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "s3:ListBucket", prefix) from exc
        return found

    @contextmanager
    def open(self, obj: ListedObject, *, seekable: bool = False) -> Iterator[IO[bytes]]:
        """The object's bytes as a stream, of the version listed (If-Match on its ETag: a file
        replaced meanwhile fails rather than mixing with the ledger's record). ``seekable``
        (Parquet) spools it to a temporary file first."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "s3:GetObject", obj.key) from exc
        try:
            if not seekable:
                yield body
                return
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                shutil.copyfileobj(body, spool, 1 << 20)
                spool.seek(0)
                yield spool
        finally:
            body.close()
