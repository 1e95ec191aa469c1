"""The recipient's delivery page in Chromium: the link holder activates, lands on it and sees
the first transfer arrive; later a read-only link made with `byob links create --read-only`
opens straight onto it, never the wizard."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from byob.demo.emulator import LocalAws
from tests.browser.conftest import ACME_ROWS, DESKTOP, Served
from tests.support import CUSTOMER

pytestmark = pytest.mark.browser
REGION = "eu-west-1"


def wait_for_delivery(page: Any) -> str:
    """Reload the delivery page until a transfer succeeded (the scheduler starts the first
    one after activation); the table row's text."""
    for _ in range(120):
        rows = page.locator("table.transfers tbody tr")
        if rows.count() and "Succeeded" in rows.first.inner_text():
            return str(rows.first.inner_text())
        assert "Failed" not in page.locator("main").inner_text(), page.locator("main").inner_text()
        page.wait_for_timeout(500)
        page.goto(page.url.split("?")[0].replace("/connect/done", "/connect/delivery"))
    raise AssertionError("no transfer succeeded on the delivery page")


def test_holder_lands_on_the_delivery_page_and_sees_the_transfer(
    served: Served, browser: Any, aws: LocalAws, shoot: Any
) -> None:
    link = served.link("acme")
    name, bucket = f"deliv-{uuid.uuid4().hex[:6]}", f"deliv-{uuid.uuid4().hex[:8]}"
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(link["url"])
    page.wait_for_url(re.compile(r"/connect/type$"))

    # The wizard's steps are tested in test_wizard.py; here the link's API does them.
    token = {"Authorization": f"Bearer {link['token']}"}
    with httpx.Client(base_url=served.base_url, headers=token) as api:
        body = {"name": name, "account_id": CUSTOMER, "bucket": bucket, "region": REGION}
        assert api.post("/api/v1/recipient/connection", json=body).status_code == 201
        policies = api.get("/api/v1/recipient/connection/policies").json()
        customer = aws.customer(CUSTOMER, REGION)
        customer.create_bucket(bucket)
        customer.create_role(
            policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
        )
        assert api.post("/api/v1/recipient/connection/validate").json()["passed"] is True

    page.goto(f"{served.base_url}/connect")
    page.wait_for_url(re.compile(r"/connect/validate$"))
    page.get_by_role("button", name="Activate Connection").click()
    page.wait_for_url(re.compile(r"/connect/done$"))
    assert "Your connection is active" in page.locator("main").inner_text()

    row = wait_for_delivery(page)
    assert "invoices" in row and f"\t{ACME_ROWS}\t" in row, row
    text = page.locator("main").inner_text()
    assert "Your deliveries" in text and f"s3://{bucket}" in text
    assert f"read_parquet('s3://{bucket}/invoices/*/*.parquet'" in text
    assert page.locator("#delivery-status .local-time").count() == 1  # next run, local too
    shoot(page, "delivery", readme="recipient-delivery")

    # Later: a read-only link from the CLI opens the same page, and never the wizard.
    viewer = served.cli(
        "links", "create", "--tenant", "acme", "--connection", name, "--read-only", "--json"
    )
    assert viewer["read_only"] is True
    other = browser.new_context(viewport=DESKTOP).new_page()
    other.goto(viewer["url"])
    other.wait_for_url(re.compile(r"/connect/delivery$"))
    assert f"\t{ACME_ROWS}\t" in other.locator("table.transfers tbody tr").first.inner_text()
    refused = other.goto(f"{served.base_url}/connect/bucket")
    assert refused is not None and refused.status == 403
    assert "only shows your deliveries" in other.locator("main").inner_text()

    # The operator sends one from the connection's page too; it is shown once, then listed.
    operator = browser.new_context(viewport=DESKTOP).new_page()
    operator.goto(f"{served.base_url}/connections")
    operator.get_by_label("API key").fill(served.operator_key())
    operator.get_by_role("button", name="Sign in").click()
    operator.wait_for_url(re.compile(r"/connections$"))
    operator.get_by_role("row").filter(has_text=name).get_by_role("link", name=name).click()
    operator.get_by_role("button", name="Send a read-only delivery link").click()
    url = operator.locator("#read-only-link-url").inner_text()
    listed = operator.locator("section[aria-labelledby=links-title] li").all_inner_texts()
    assert sum("Read-only link" in item for item in listed) == 2, listed  # the CLI's and this
    third = browser.new_context(viewport=DESKTOP).new_page()
    third.goto(url)
    third.wait_for_url(re.compile(r"/connect/delivery$"))
    assert name in third.locator("main").inner_text()
