"""Reading back what a contender wrote: rows from Parquet footers, bytes from file sizes.

The bench never trusts a contender's own report of what it wrote; it counts from the files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

# Credentials the S3 emulator accepts (moto accepts any); also handed to byob's environment.
EMULATOR_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Output:
    """Totals over the Parquet files of one contender's output."""

    rows: int
    bytes: int
    files: int


def local_output(root: Path) -> Output:
    """Every *.parquet under `root` (recursively)."""
    paths = sorted(root.rglob("*.parquet")) if root.exists() else []
    rows = sum(pq.read_metadata(p).num_rows for p in paths)
    return Output(rows=rows, bytes=sum(p.stat().st_size for p in paths), files=len(paths))


def s3_output(endpoint_url: str, bucket: str, prefix: str = "") -> Output:
    """Every *.parquet object under s3://bucket/prefix on the emulator."""
    fs = emulator_filesystem(endpoint_url)
    selector = pafs.FileSelector(
        f"{bucket}/{prefix}".rstrip("/"), recursive=True, allow_not_found=True
    )
    infos = [i for i in fs.get_file_info(selector) if i.is_file and i.path.endswith(".parquet")]
    rows = sum(pq.read_metadata(i.path, filesystem=fs).num_rows for i in infos)
    return Output(rows=rows, bytes=sum(i.size for i in infos), files=len(infos))


def emulator_filesystem(endpoint_url: str) -> pafs.S3FileSystem:
    scheme, _, host = endpoint_url.partition("://")
    return pafs.S3FileSystem(
        endpoint_override=host,
        scheme=scheme,
        access_key=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region=EMULATOR_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


class S3Emulator:
    """An in-process moto S3 server on a free port (objects live in this process's memory)."""

    def __init__(self) -> None:
        self._server = None
        self.endpoint_url = ""
        self._buckets = 0

    def __enter__(self) -> S3Emulator:
        from moto.server import ThreadedMotoServer

        # The server logs every request through werkzeug; thousands of lines drown the report.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def create_bucket(self, name: str) -> str:
        """A new, empty bucket named after ``name`` (numbered: every round gets its own, so
        counting a bucket counts one run)."""
        import boto3

        self._buckets += 1
        name = f"{name}-{self._buckets}"

        boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=EMULATOR_CREDENTIALS["AWS_DEFAULT_REGION"],
        ).create_bucket(Bucket=name)
        return name

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.stop()

    def env(self) -> dict[str, str]:
        """Environment for a client of the emulator (byob's subprocesses)."""
        return {
            **EMULATOR_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,  # boto3's own override
            "BYOB_AWS_ENDPOINT_URL": self.endpoint_url,  # byob's setting
            "BYOB_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }
