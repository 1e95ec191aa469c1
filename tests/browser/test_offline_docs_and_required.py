"""In Chromium: the API documentation works with the network cut (byob serves Swagger UI's and
ReDoc's assets itself), and the wizard says which required fields were left empty, in the
words the API and the CLI use."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from byob.domain.fields import WHAT_TO_PUT
from tests.browser.conftest import DESKTOP, Served

pytestmark = pytest.mark.browser


def offline_page(browser: Any, served: Served) -> tuple[Any, list[tuple[str, str]]]:
    """A page that reaches byob and nothing else, as on a host without internet; returns the
    outside requests it tried (address, kind: script, stylesheet, image, ...)."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    outside: list[tuple[str, str]] = []

    def only_byob(route: Any) -> None:
        url = route.request.url
        if url.startswith(served.base_url + "/") or url == served.base_url:
            route.continue_()
        else:
            outside.append((url, route.request.resource_type))
            route.abort()

    page.route("**/*", only_byob)
    return page, outside


def test_swagger_ui_shows_the_operations_with_the_network_cut(
    served: Served, browser: Any, shoot: Any
) -> None:
    page, outside = offline_page(browser, served)
    page.goto(f"{served.base_url}/docs")
    page.locator(".opblock-summary-path", has_text="/api/v1/connections").first.wait_for(
        state="visible", timeout=30_000
    )
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/connections" in [p.replace("\u200b", "") for p in paths]
    assert page.get_by_text("Deliver each tenant's rows into storage the tenant owns.").is_visible()
    shoot(page, "swagger-ui-offline")
    assert outside == [], f"/docs reached outside byob: {outside}"
    page.context.close()


def test_redoc_shows_the_operations_with_the_network_cut(
    served: Served, browser: Any, shoot: Any
) -> None:
    page, outside = offline_page(browser, served)
    page.goto(f"{served.base_url}/redoc")
    page.locator("h2", has_text="Create Connection").first.wait_for(state="visible", timeout=30_000)
    assert page.locator("h1", has_text="byob").first.is_visible()
    shoot(page, "redoc-offline")
    # ReDoc's own code and styles come from byob (its "API docs by Redocly" credit may link out).
    needed = [url for url, kind in outside if kind in ("script", "stylesheet", "font", "fetch")]
    assert needed == [], f"/redoc needs what is outside byob: {needed}"
    page.context.close()


def test_the_wizard_says_each_empty_required_field_is_required(
    served: Served, browser: Any, shoot: Any
) -> None:
    link = served.link(f"t-{uuid.uuid4().hex[:8]}")
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(link["url"])
    page.wait_for_url(re.compile(r"/connect/type$"))
    page.get_by_label("S3 bucket with AWS Athena").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/bucket"))

    # Leaving a required field empty while typing says so at once ...
    bucket = page.locator("#f-bucket")
    bucket.fill("x")
    bucket.fill("")
    page.wait_for_function(
        "([id, text]) => document.getElementById(id).textContent === text",
        arg=["f-bucket-error", f"bucket is required: {WHAT_TO_PUT['bucket']}"],
    )
    # ... and submitting the form empty lists every one, each next to its field.
    page.locator("#f-workgroup").fill("")
    page.get_by_role("button", name="Save & Continue").click()
    summary = page.locator("#form-errors")
    summary.wait_for(state="visible")
    required = ["name", "account_id", "bucket", "region", "schema", "database", "workgroup"]
    for field in required:
        message = f"{field} is required: {WHAT_TO_PUT[field]}"
        assert page.locator(f"#f-{field}-error").inner_text() == message
        assert page.locator(f"#f-{field}").get_attribute("aria-invalid") == "true"
        assert summary.get_by_role("link", name=message).count() == 1
    assert "''" not in summary.inner_text()
    assert "ap-southeast-7" not in page.locator("#f-region-error").inner_text()
    shoot(page, "bucket-step-required")
    page.context.close()
