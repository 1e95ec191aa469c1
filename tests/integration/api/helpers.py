"""What the API tests share: checking error bodies, onboarding over HTTP, waiting for transfers."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

import httpx
import pyarrow.parquet as pq

from byob.demo.emulator import CustomerAccount, LocalAws
from tests.support import CUSTOMER, wait_for

API = "/api/v1"
ACME_IDS = frozenset(range(1, 61, 2))  # odd invoice ids belong to acme, even ones to globex
GLOBEX_IDS = frozenset(range(2, 61, 2))


def unique(prefix: str) -> str:
    """A name no other test (nor an earlier test against the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def error_of(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The JSON error body every non-2xx answer has: {"error": {"code", "message", "field"?}}."""
    assert "Traceback" not in response.text, response.text
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text)
    assert response.status_code >= 400, response.text
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) <= {"code", "message", "field"}, body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    return error


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


def s3_body(name: str, bucket: str, **extra: Any) -> dict[str, Any]:
    """A valid request body for an S3 connection in the customer's account."""
    return {
        "name": name,
        "tenant": "acme",
        "type": "s3",
        "account_id": CUSTOMER,
        "bucket": bucket,
        "region": "eu-west-1",
        "base_path": "exports/billing",
    } | extra


def customer_sets_up(
    aws: LocalAws,
    policies: dict[str, Any],
    bucket: str,
    region: str = "eu-west-1",
    account: str = CUSTOMER,
) -> CustomerAccount:
    """What the recipient does in their AWS account with the material byob showed them."""
    customer = aws.customer(account, region)
    customer.create_bucket(bucket)
    customer.create_role(
        policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
    )
    return customer


def onboard(
    client: httpx.Client, aws: LocalAws, body: dict[str, Any]
) -> tuple[dict[str, Any], CustomerAccount]:
    """Create, let the customer set up bucket and role, validate, activate: all over HTTP."""
    conn = ok(client.post(f"{API}/connections", json=body), 201)
    policies = ok(client.get(f"{API}/connections/{conn['name']}/policies"))
    customer = customer_sets_up(aws, policies, body["bucket"], body["region"])
    validation = ok(client.post(f"{API}/connections/{conn['name']}/validate"))
    assert validation["passed"], validation
    active = ok(client.post(f"{API}/connections/{conn['name']}/activate"))
    assert active["status"] == "active"
    return active, customer


def wait_for_transfer(
    client: httpx.Client, transfer_id: str, timeout: float = 120
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        transfer = ok(client.get(f"{API}/transfers/{transfer_id}"))
        return dict(transfer) if transfer["status"] in ("succeeded", "failed") else None

    return dict(wait_for(finished, timeout=timeout, what=f"transfer {transfer_id} to finish"))


def transfer_ids(
    client: httpx.Client, connection: str, triggered: dict[str, Any], timeout: float = 120
) -> list[str]:
    """The transfers a trigger started: planned at once by the embedded workers, or planned
    by a `byob worker` once it takes the queued job (then they show in the list)."""
    if triggered["transfers"]:
        return [t["id"] for t in triggered["transfers"]]
    assert triggered.get("queued"), triggered
    listed = wait_for(
        lambda: ok(client.get(f"{API}/transfers", params={"connection": connection}))["items"],
        timeout=timeout,
        what="a transfer for the queued job",
    )
    return [t["id"] for t in listed]


def delivered_ids(customer: CustomerAccount, bucket: str, prefix: str) -> list[int]:
    """Every invoice id in the Parquet files under a prefix (read back from S3)."""
    s3 = customer.client("s3")
    ids: list[int] = []
    for obj in customer.keys(bucket, prefix):
        if obj["Key"].endswith(".parquet"):
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            ids += pq.read_table(io.BytesIO(data)).column("id").to_pylist()
    return ids
