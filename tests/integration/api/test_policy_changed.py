"""PATCH says when the permissions policy changed, with the statements' diff, and when not."""

from __future__ import annotations

import httpx

from tests.integration.api.helpers import API, ok, s3_body, unique


def test_patch_answers_how_the_permissions_policy_changed(ops: httpx.Client) -> None:
    name, bucket = unique("moved"), unique("bkt")
    ok(ops.post(f"{API}/connections", json=s3_body(name, bucket)), 201)

    moved = ok(ops.patch(f"{API}/connections/{name}", json={"base_path": "exports/new"}))

    assert moved["status"] == "draft" and moved["base_path"] == "exports/new"
    changed = moved["policy_changed"]
    assert changed["message"] == (
        "the permissions policy changed: the recipient must paste the new one into IAM again "
        "before the connection is validated and activated"
    )
    assert changed["statements"] == [
        {
            "sid": "ByobWriteUnderBasePath",
            "removed": {"Resource": [f"arn:aws:s3:::{bucket}/exports/billing/*"]},
            "added": {"Resource": [f"arn:aws:s3:::{bucket}/exports/new/*"]},
        }
    ]
    statement = changed["permissions_policy"]["Statement"][0]
    assert statement["Resource"] == f"arn:aws:s3:::{bucket}/exports/new/*"

    renamed = ok(ops.patch(f"{API}/connections/{name}", json={"frequency_minutes": 60}))
    assert renamed["policy_changed"] is None
    ok(ops.delete(f"{API}/connections/{name}"), 204)
