"""A manifest delivered into the emulator's bucket verifies with `byob manifests verify --s3`,
read with the recipient's own credentials and the published keys; a changed object fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import INVOICES_MODEL, create_invoices, make_services, onboard_s3, write_config

pytestmark = pytest.mark.integration

BYOB = [sys.executable, "-m", "byob.cli"]


def test_a_delivery_in_s3_verifies_and_a_changed_object_is_named(
    tmp_path: Path, pg_url: str, aws: Any
) -> None:
    create_invoices(pg_url, is_acme=lambda i: i % 2 == 1)
    app = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", pg_url, [INVOICES_MODEL]), aws
    )
    conn, customer = onboard_s3(app, aws)
    [result] = app.transfers.run(conn.name)
    assert result.record.rows > 0
    [manifest] = [o["Key"] for o in customer.keys("bkt", "exports/_manifests/")]
    keys = tmp_path / "byob-keys.json"
    keys.write_text(json.dumps(app.manifests.keyring().jwks()))
    creds = customer.credentials()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYOB_", "AWS_"))} | {
        "AWS_ACCESS_KEY_ID": creds["key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret"],
        "AWS_SESSION_TOKEN": creds["token"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "BYOB_HOME": str(tmp_path / "recipient"),
    }
    verify = [
        *BYOB,
        "manifests",
        "verify",
        f"s3://bkt/{manifest}",
        "--s3",
        "s3://bkt",
        "--keys",
        str(keys),
        "--endpoint-url",
        aws.endpoint_url,
    ]
    ok = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "files match" in ok.stdout

    s3 = customer.client("s3")
    body = json.loads(s3.get_object(Bucket="bkt", Key=manifest)["Body"].read())
    key = body["files"][0]["key"]
    data = s3.get_object(Bucket="bkt", Key=key)["Body"].read()
    s3.put_object(Bucket="bkt", Key=key, Body=data[:-1])
    bad = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert f"file {key} size differs: {len(data) - 1} bytes" in bad.stderr
