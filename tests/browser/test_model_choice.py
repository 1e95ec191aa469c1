"""The bucket step's models in Chromium: every offered model checked at first, none checked
refused beside the checkboxes with the domain's message, all checked again stored as every
offered model."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from byob.domain.connections import model_selection
from byob.errors import InvalidFieldError
from tests.browser.conftest import DESKTOP, Served
from tests.support import CUSTOMER

pytestmark = pytest.mark.browser


def test_a_recipient_must_keep_at_least_one_model(served: Served, browser: Any, aws: Any) -> None:
    tenant = f"models{uuid.uuid4().hex[:6]}"
    link = served.link(tenant)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(link["url"])
    page.wait_for_url(re.compile(r"/connect/type$"))
    page.get_by_label("Bring your own S3 bucket").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/bucket"))

    invoices = page.get_by_role("checkbox", name="invoices")
    assert invoices.is_checked()  # every offered model, unless the recipient says otherwise
    assert page.locator('ul[aria-label="Columns of invoices"]').inner_text().split() == [
        "id", "bigint", "tenant_id", "string", "amount", "decimal(18,2)",
        "updated_at", "timestamptz",
    ]  # fmt: skip
    page.locator("#f-name").fill("acme-models")
    page.locator("#f-account_id").fill(CUSTOMER)
    page.locator("#f-bucket").fill("acme-data")
    page.locator("#f-region").select_option("eu-west-1")
    invoices.uncheck()
    page.get_by_role("button", name="Save & Continue").click()
    page.wait_for_load_state()
    with pytest.raises(InvalidFieldError) as refused:
        model_selection([])
    assert page.locator("#f-models-error").inner_text() == refused.value.message
    assert page.locator("#form-errors").get_by_role("link").inner_text() == refused.value.message
    assert not page.get_by_role("checkbox", name="invoices").is_checked()  # as sent

    page.get_by_role("checkbox", name="invoices").check()
    page.get_by_role("button", name="Save & Continue").click()
    page.wait_for_url(re.compile(r"/connect/role"))
    made = served.api("get", "/api/v1/connections/acme-models")
    assert made["models"] is None
    context.close()
