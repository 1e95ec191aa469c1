"""The exact-delivery check, read back independently of byob (boto3 and pyarrow on what is in
the recipient's bucket, psycopg on the source and the state store):

- every row version of the tenant arrives exactly once, and no other tenant's row;
- no multipart upload is left incomplete, but one whose CreateMultipartUpload answer an outage
  cut off (S3 started it; byob never learnt its ID, so it sent no part and cannot abort it —
  the README's "exactly once" says a lifecycle rule removes those);
- the manifests list exactly the data files there are, with their rows, bytes and SHA-256;
- the transfer history matches the manifests: every succeeded transfer has one, with the
  same figures, and no transfer is left planned or running.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow.parquet as pq


def check_delivery(
    *,
    s3: Any,
    bucket: str,
    prefix: str,
    model: str,
    tenant: str,
    source_url: str,
    state_url: str,
    connection_id: str,
    cuts: Sequence[datetime] = (),
) -> dict[str, int]:
    with psycopg.connect(source_url) as db:
        # Delivered as timestamp(ms), truncated (docs: reference/aws-facts.md, "types").
        expected = {
            (i, at.replace(microsecond=at.microsecond - at.microsecond % 1000))
            for i, at in db.execute(
                f"SELECT id, updated_at FROM {model} WHERE tenant_id = %s", (tenant,)
            )
        }
    objects = {
        o["Key"]: o
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    }
    data_keys = {k for k in objects if k.startswith(f"{prefix}/{model}/")}
    manifest_keys = {k for k in objects if k.startswith(f"{prefix}/_manifests/{model}/")}

    versions: Counter[tuple[int, datetime]] = Counter()
    bodies: dict[str, bytes] = {}
    for key in sorted(data_keys):
        body = bodies[key] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        columns = table.to_pydict()
        if "tenant_id" in columns:
            strangers = {t for t in columns["tenant_id"] if t != tenant}
            assert not strangers, f"{key} holds rows of {strangers}"
        versions.update((i, at) for i, at in zip(columns["id"], columns["updated_at"], strict=True))
    twice = [v for v, n in versions.items() if n > 1]
    assert not twice, f"{tenant}: {len(twice)} row versions delivered more than once"
    foreign = set(versions) - expected
    assert not foreign, (
        f"{tenant}: rows that are not the tenant's: {sorted(foreign)[:3]} (of {len(foreign)}; expected e.g. {sorted(expected)[:3]})"
    )
    missing = expected - set(versions)
    assert not missing, f"{tenant}: {len(missing)} row versions never delivered"

    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    left = [u for u in uploads if not answer_lost(s3, bucket, u, cuts)]
    assert left == [], f"{tenant}: multipart uploads left incomplete: {left}"

    listed: dict[str, dict[str, Any]] = {}
    manifests: dict[str, dict[str, Any]] = {}
    for key in manifest_keys:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        manifests[manifest["transfer_id"]] = manifest | {"key": key}
        for f in manifest["files"]:
            file_key = f["key"].removeprefix(f"s3://{bucket}/")
            assert file_key not in listed, f"{file_key} is in two manifests"
            listed[file_key] = f
    assert set(listed) == data_keys, (
        f"{tenant}: files without a manifest {sorted(data_keys - set(listed))}, "
        f"manifests naming absent files {sorted(set(listed) - data_keys)}"
    )
    for key, f in listed.items():
        body = bodies[key]
        assert (f["bytes"], f["sha256"]) == (len(body), hashlib.sha256(body).hexdigest()), key
        assert f["rows"] == pq.read_metadata(io.BytesIO(body)).num_rows, key

    with psycopg.connect(state_url) as db:
        records = db.execute(
            "SELECT id, status, rows, files, manifest_key FROM transfers "
            "WHERE connection_id = %s AND model = %s",
            (connection_id, model),
        ).fetchall()
    unfinished = [(r[0], r[1]) for r in records if r[1] in ("planned", "running")]
    assert not unfinished, f"{tenant}: transfers left unfinished: {unfinished}"
    succeeded = {r[0]: r for r in records if r[1] == "succeeded"}
    assert set(succeeded) == set(manifests), (
        f"{tenant}: succeeded transfers {sorted(succeeded)} but manifests {sorted(manifests)}"
    )
    for tid, (_, _, rows, files, manifest_key) in succeeded.items():
        manifest = manifests[tid]
        assert manifest_key.endswith(manifest["key"]), (tid, manifest_key)
        assert (rows, files) == (manifest["rows"], len(manifest["files"])), tid
    return {"rows": sum(versions.values()), "files": len(data_keys), "transfers": len(records)}


def answer_lost(s3: Any, bucket: str, upload: dict[str, Any], cuts: Sequence[datetime]) -> bool:
    """An upload S3 began moments before a cut, with no part: its ID never reached byob."""
    began = upload["Initiated"]
    near_a_cut = any(
        cut - timedelta(seconds=10) <= began <= cut + timedelta(seconds=1) for cut in cuts
    )
    if not near_a_cut:
        return False
    parts = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return not parts.get("Parts")
