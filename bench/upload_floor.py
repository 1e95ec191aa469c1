"""The upload floor: byob's own local output, uploaded to S3 with boto3 and nothing else.

byob → S3 does what byob → local directory does, plus the upload. The least an upload can
cost is boto3 sending the same files, the same way: multipart in byob's part size with two
parts in flight per file (as byob's writer), files of one connection one after another, and as
many connections at once as byob's run (`transfers run NAME`: one; `transfers run --all`: two).
`byob → S3 ÷ (byob local + this floor)` is then byob's overhead of uploading as it encodes.

    python bench/upload_floor.py --endpoint-url URL --bucket B --src DIR --connections N \
        --result FILE.json

`DIR` holds one directory per tenant (as byob's local bench connections write them); each lands
under `bench/<tenant>/` in the bucket, where byob's S3 connections write theirs. The result file
holds the seconds of the uploads alone (client made, every file sent): interpreter start-up and
imports are already counted once, in byob local's seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PARTS_IN_FLIGHT = 2  # byob's S3 writer: two parts uploading while the next is filled
# Connections byob's bench runs at once: `transfers run NAME` for the largest tenant,
# `transfers run --all` (two at a time by default) for all tenants.
BENCH_CONNECTIONS = {"largest": 1, "all": 2}


def part_bytes(connections: int) -> int:
    """byob's part size when `connections` transfers share one process's buffers."""
    from byob.engine.transfer import EngineOptions

    return EngineOptions().shared_by(connections).part_bytes


def upload(endpoint_url: str, bucket: str, src: Path, *, connections: int, part_size: int) -> dict:
    """Every file under src/<tenant>/ to s3://bucket/bench/<tenant>/…; what was sent."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    started = time.perf_counter()
    client = boto3.client("s3", endpoint_url=endpoint_url)
    config = TransferConfig(
        multipart_threshold=part_size,  # byob sends a file smaller than a part in one PUT
        multipart_chunksize=part_size,
        max_concurrency=PARTS_IN_FLIGHT,
    )

    def one_connection(tenant_dir: Path) -> tuple[int, int]:
        files = sorted(p for p in tenant_dir.rglob("*") if p.is_file())
        for path in files:
            key = f"bench/{tenant_dir.name}/{path.relative_to(tenant_dir).as_posix()}"
            client.upload_file(str(path), bucket, key, Config=config)
        return len(files), sum(p.stat().st_size for p in files)

    tenant_dirs = sorted(p for p in src.iterdir() if p.is_dir())
    with ThreadPoolExecutor(connections) as pool:
        sent = list(pool.map(one_connection, tenant_dirs))
    return {
        "inner_seconds": time.perf_counter() - started,
        "connections": connections,
        "part_bytes": part_size,
        "files": sum(n for n, _ in sent),
        "bytes": sum(b for _, b in sent),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    result = upload(
        args.endpoint_url,
        args.bucket,
        args.src,
        connections=args.connections,
        part_size=part_bytes(args.connections),
    )
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
