"""Reading delivered files back, to check them against their manifest: from a directory or a
bucket laid out as byob writes them (a manifest's keys are relative to its root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from byob.errors import DestinationError
from byob.services.manifests import Readable


class LocalDeliveredFiles:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def open(self, key: str) -> Readable | None:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise DestinationError(f"key {key!r} escapes {self.root}")
        try:
            return path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DestinationError(f"cannot read {path}: {exc}") from exc

    def url(self, key: str) -> str:
        return str(self.root / key)


class S3DeliveredFiles:
    """Objects under ``prefix`` in ``bucket``, read with the caller's own credentials."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def open(self, key: str) -> Readable | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body: Readable = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise DestinationError(f"cannot read {self.url(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise DestinationError(f"cannot read {self.url(key)}: {exc}") from exc
        return body

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
