"""An import connection's checks beyond the role (seed 001: "assume the configured IAM role
and list files in the bucket"): the role lists the base path, reads a file there, and cannot
write. Each raises CheckFailed / CheckWarning with what to fix."""

from __future__ import annotations

import secrets
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.aws.sessions import aws_error_code
from byob.destinations.athena_checks import CheckFailed, CheckWarning
from byob.domain.connections import Connection
from byob.domain.imports import ImportSpec

_DENIED = ("AccessDenied", "AccessDeniedException", "403")
MAX_LISTED = 10_000  # objects counted before the check stops listing
FIRST_BYTES = 1024


class ImportChecks:
    def __init__(self, *, conn: Connection, s3: Any, spec: ImportSpec | None, who: str) -> None:
        self.conn = conn
        self.s3 = s3
        self.spec = spec  # None: the models file no longer declares the connection's import
        self.who = who
        self.first_key: str | None = None  # the newest file of the import the listing saw

    @property
    def _prefix(self) -> str:
        return self.conn.import_prefix

    def _where(self) -> str:
        return f"s3://{self.conn.bucket}/{self._prefix}"

    def list_base_path(self) -> str:
        """ListObjectsV2 under the base path: how many objects, and the newest key."""
        if self.spec is None:
            raise CheckFailed(
                f"the models file declares no import named {self.conn.import_name!r}; ask the "
                "vendor to declare it, or create the connection for a declared import",
                "NoSuchImport",
            )
        count, matching, newest, capped = 0, 0, None, False
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.conn.bucket, Prefix=self._prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    count += 1
                    relative = obj["Key"][len(self._prefix) :]
                    if self.spec.takes(relative):
                        matching += 1
                        if newest is None or obj["LastModified"] > newest["LastModified"]:
                            newest = obj
                if count >= MAX_LISTED:
                    capped = True
                    break
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            if code in _DENIED:
                condition = (
                    f" with the condition s3:prefix = {self._prefix} or {self._prefix}*"
                    if self._prefix
                    else ""
                )
                raise CheckFailed(
                    f"AccessDenied on s3:ListBucket of arn:aws:s3:::{self.conn.bucket}: the "
                    f"permissions policy attached to {self.who} must allow s3:ListBucket on "
                    f"arn:aws:s3:::{self.conn.bucket}{condition}; paste the permissions policy "
                    "shown",
                    "AccessDenied",
                ) from exc
            if code in ("NoSuchBucket", "404"):
                raise CheckFailed(
                    f"bucket {self.conn.bucket} does not exist; fix the bucket name", "NoSuchBucket"
                ) from exc
            raise CheckFailed(f"{code} listing {self._where()}: {exc}", code) from exc
        at_least = "at least " if capped else ""
        if newest is None:
            return (
                f"listed {self._where()}: {at_least}{count} objects, none of them a file of "
                f"import {self.spec.name!r} yet"
                + (f" (key pattern {self.spec.key_pattern})" if self.spec.key_pattern else "")
                + "; files you add there are imported on the connection's schedule"
            )
        self.first_key = newest["Key"]
        return (
            f"listed {self._where()}: {at_least}{count} objects, {at_least}{matching} of them "
            f"files of import {self.spec.name!r}; the newest is {newest['Key']}"
        )

    def read_first_bytes(self) -> str:
        """GetObject of the newest file's first bytes, when there is a file."""
        if self.first_key is None:
            return "no file to read yet: reading is checked again by the first import"
        try:
            body = self.s3.get_object(
                Bucket=self.conn.bucket, Key=self.first_key, Range=f"bytes=0-{FIRST_BYTES - 1}"
            )["Body"]
            got = len(body.read())
            body.close()
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            if code in _DENIED:
                raise CheckFailed(
                    f"AccessDenied on s3:GetObject of {self.first_key}: the permissions policy "
                    f"attached to {self.who} must allow s3:GetObject on "
                    f"arn:aws:s3:::{self.conn.bucket}/{self._prefix}*; if the bucket is "
                    "encrypted with a KMS key, the role also needs kms:Decrypt on that key",
                    "AccessDenied",
                ) from exc
            raise CheckFailed(f"{code} reading {self.first_key}: {exc}", code) from exc
        return f"read the first {got} bytes of s3://{self.conn.bucket}/{self.first_key}"

    def write_refused(self) -> str:
        """A PutObject must be refused: the role reads, and nothing else. If it is not, the
        probe object is removed again and a warning says so."""
        key = f"{self._prefix}_byob_write_probe_{secrets.token_hex(6)}"
        try:
            self.s3.put_object(Bucket=self.conn.bucket, Key=key, Body=b"")
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            if code in _DENIED:
                return "PutObject was refused, as it must be: the role only reads"
            raise CheckFailed(f"{code} on the PutObject probe: {exc}", code) from exc
        try:
            self.s3.delete_object(Bucket=self.conn.bucket, Key=key)
            removed = "removed again"
        except (ClientError, BotoCoreError):
            removed = "it could not be removed; you may delete it"
        raise CheckWarning(
            f"the role may write to your bucket: a probe PutObject of s3://{self.conn.bucket}/"
            f"{key} succeeded ({removed}). byob only reads, so the role is broader than "
            "needed; attach exactly the permissions policy shown (s3:ListBucket and "
            "s3:GetObject)",
            "WriteAllowed",
        )
