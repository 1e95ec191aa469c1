"""A required field sent empty and one left out of the body get the same answer: a 422 naming
the field, saying it is required and what to put in it (the domain's words, as the CLI and
the wizard say them), never pydantic's "Field required" nor the rule for a bad value."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from byob.domain.fields import WHAT_TO_PUT
from tests.integration.api.helpers import API, error_of, s3_body, unique

pytestmark = pytest.mark.integration


def athena_body(name: str, bucket: str) -> dict[str, Any]:
    return s3_body(name, bucket, type="athena", schema="acme_billing", database="acme_queries")


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("name", s3_body),
        ("tenant", s3_body),
        ("account_id", s3_body),
        ("bucket", s3_body),
        ("region", s3_body),
        ("schema", athena_body),
        ("database", athena_body),
    ],
)
def test_a_required_field_empty_or_left_out_is_required(
    ops: httpx.Client, field: str, body: Any
) -> None:
    name = unique("req")
    full = body(name, unique("bkt"))
    expected = {
        "code": "invalid_field",
        "message": f"{field} is required: {WHAT_TO_PUT[field]}",
        "field": field,
    }
    empty = full | {field: ""}
    left_out = {k: v for k, v in full.items() if k != field}
    for sent in (empty, full | {field: "   "}, left_out):
        assert error_of(ops.post(f"{API}/connections", json=sent), 422) == expected, sent
    error_of(ops.get(f"{API}/connections/{name}"), 404)  # nothing was created


def test_a_missing_region_reads_as_the_issue_asks(ops: httpx.Client) -> None:
    body = s3_body(unique("req"), unique("bkt"))
    del body["region"]
    error = error_of(ops.post(f"{API}/connections", json=body), 422)
    assert error["message"] == "region is required: the AWS region of the bucket, e.g. eu-west-1"


def test_a_link_needs_a_tenant(ops: httpx.Client) -> None:
    expected = {
        "code": "invalid_field",
        "message": f"tenant is required: {WHAT_TO_PUT['tenant']}",
        "field": "tenant",
    }
    for sent in ({}, {"tenant": ""}, {"tenant": "  "}):
        assert error_of(ops.post(f"{API}/links", json=sent), 422) == expected, sent


def test_other_missing_keys_and_bodies_say_required_too(ops: httpx.Client) -> None:
    error = error_of(ops.post(f"{API}/transfers", json={}), 422)
    assert error == {
        "code": "invalid_field",
        "message": "connection is required",
        "field": "connection",
    }
    error = error_of(ops.post(f"{API}/connections"), 422)
    assert error == {"code": "invalid_field", "message": "a JSON request body is required"}
