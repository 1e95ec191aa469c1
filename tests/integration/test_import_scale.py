"""A 2 GiB CSV file imported end to end (run_import, S3ImportObjects on the moto server,
PostgresImportTarget) in a child process whose peak RSS stays under 300 MB: the file is
streamed from the GetObject body to COPY one bounded batch at a time, never held whole."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
from botocore.config import Config

from byob.sources.import_target import LEDGER, PostgresImportTarget
from tests import import_worker
from tests.support import free_port, pg_exec, wait_for

pytestmark = pytest.mark.integration

BUCKET = "acme-big"
KEY = "in/2026/12/usage.csv"
FILE_BYTES = 2 << 30
PART_BYTES = 64 << 20  # the multipart upload's parts: a whole number of blocks each
MAX_RSS_MB = 300
ROWS_PER_BLOCK = 10_000  # about 10 MB


def usage_block(rows: int, seed: int) -> bytes:
    """CSV rows of 60 to 2,000 bytes: wide rows keep the row count (and the test's time)
    down, and fill a 65,536-row batch with ~65 MB of text, which is what a batch bounded only
    by its row count would hold."""
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        account = f"acct-{i:06d}-" + "x" * rng.randrange(0, 1940)
        quantity = f"{rng.randrange(10**6)}.{rng.randrange(10**6):06d}"
        lines.append(f"{account},{quantity},2026-12-{1 + i % 28:02d}T{i % 24:02d}:00:00Z\n")
    return "".join(lines).encode()


def upload(s3: object, block: bytes, blocks: int) -> None:
    """``blocks`` copies of ``block`` after the header, as a multipart upload: the body is
    generated part by part and never exists whole in this process."""
    per_part = max(1, PART_BYTES // len(block))
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]  # type: ignore[attr-defined]
    parts, done, number = [], 0, 1
    while done < blocks:
        count = min(per_part, blocks - done)
        body = (import_worker.USAGE_HEADER if number == 1 else b"") + block * count
        etag = s3.upload_part(  # type: ignore[attr-defined]
            Bucket=BUCKET, Key=KEY, UploadId=upload_id, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        done += count
        number += 1
    s3.complete_multipart_upload(  # type: ignore[attr-defined]
        Bucket=BUCKET, Key=KEY, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


@pytest.fixture
def moto_process() -> Iterator[str]:
    """A moto server of the test's own, in another process: it holds the 2 GiB object (more
    than once while the upload completes) and frees it when stopped, instead of growing the
    pytest worker that hosts the shared emulator."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(endpoint), timeout=60, what="the moto server")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(endpoint: str) -> bool:
    try:
        return httpx.get(endpoint + "/moto-api/data.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_2_gib_csv_is_imported_in_under_300_mb(
    pg_url: str, moto_process: str, tmp_path: Path
) -> None:
    pg_exec(pg_url, import_worker.USAGE_DDL)
    PostgresImportTarget(pg_url).ensure_ledger()
    # Completing the upload joins 2 GiB inside moto: longer than botocore's 60 s read timeout
    # on a busy machine, and a retried completion finds the upload gone.
    patient = Config(read_timeout=900, retries={"max_attempts": 1})
    s3 = boto3.client("s3", endpoint_url=moto_process, region_name="us-east-1", config=patient)
    s3.create_bucket(Bucket=BUCKET)
    block = usage_block(ROWS_PER_BLOCK, seed=13)
    blocks = -(-FILE_BYTES // len(block))
    upload(s3, block, blocks)

    out, err = tmp_path / "out", tmp_path / "err"
    code, peak_mb = import_worker.peak_rss_mb(
        import_worker.command(pg_url, moto_process, BUCKET), env=dict(os.environ), out=out, err=err
    )
    assert code == 0, err.read_text()[-4000:]
    run = json.loads(out.read_text())
    rows = ROWS_PER_BLOCK * blocks
    assert (run["imported"], run["rows"]) == ([KEY], rows)
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM usage_events").fetchone() == (rows,)
        assert db.execute(f"SELECT object_key, rows FROM {LEDGER}").fetchall() == [(KEY, rows)]
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
