"""The operator's side of onboarding, in Chromium: Create New runs the recipient's four steps
for a tenant the operator chooses (with the frequency chosen on the bucket step and its next
run shown in the viewer's own time), and a draft's page shows the IAM material and sends a link
that continues that draft in the recipient's wizard."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from byob.domain import fields
from tests.browser.conftest import DESKTOP, Served
from tests.browser.test_wizard import rule_message
from tests.support import CUSTOMER

pytestmark = pytest.mark.browser
REGION = "eu-west-1"
ZONE = "Asia/Tokyo"  # far from UTC, without daylight saving: the local text is predictable


def sign_in(context: Any, served: Served, path: str) -> Any:
    page = context.new_page()
    page.goto(f"{served.base_url}{path}")
    page.get_by_label("API key").fill(served.operator_key())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(path) + "$"))
    return page


def test_operator_runs_the_wizard_from_create_new_to_an_active_connection(
    served: Served, browser: Any, aws: Any, shoot: Any
) -> None:
    tenant = f"opw-{uuid.uuid4().hex[:6]}"
    name = f"{tenant}-s3"
    context = browser.new_context(viewport=DESKTOP, timezone_id=ZONE, accept_downloads=True)
    page = sign_in(context, served, "/connections")

    # Create New: the type step, with the tenant to choose first.
    page.get_by_role("link", name="Create New").click()
    page.wait_for_url(re.compile(r"/connections/new/type\?tenant=$"))
    page.get_by_role("button", name="Continue").click()  # no tenant yet
    assert page.locator("#f-tenant-error").inner_text() == rule_message(fields.tenant, "")
    # "Send a link instead" carries the typed tenant to the Links page's form.
    page.locator("#f-tenant").fill(tenant)
    page.get_by_role("button", name="Send a link instead").click()
    page.wait_for_url(re.compile(r"/links\?tenant=" + tenant))
    assert page.locator("#link-tenant").input_value() == tenant
    page.goto(f"{served.base_url}/connections?tenant={tenant}")  # a filtered list's Create New
    page.get_by_role("link", name="Create New").click()
    page.wait_for_url(re.compile(r"/connections/new/type\?tenant=" + tenant))
    assert page.locator("#f-tenant").input_value() == tenant
    page.get_by_label("Bring your own S3 bucket").check()
    shoot(page, "operator-type")
    page.get_by_role("button", name="Continue").click()

    # The bucket step: daily unless chosen; each choice's next run in UTC and local time.
    page.wait_for_url(re.compile(r"/connections/new/bucket\?tenant=.*type=s3"))
    assert page.get_by_label("Daily").is_checked()
    hourly = page.locator("#frequency-60-next")
    utc = datetime.fromisoformat(hourly.locator("time").get_attribute("datetime"))
    local = utc.astimezone(ZoneInfo(ZONE))
    text = hourly.inner_text()
    assert utc.strftime("%Y-%m-%d %H:%M:%S UTC") in text, text
    assert f"{local:%Y-%m-%d %H:%M} your time ({ZONE})" in text, text
    page.locator("#f-name").fill(name)
    page.locator("#f-account_id").fill(CUSTOMER)
    page.locator("#f-bucket").fill(f"{tenant}-data")
    page.locator("#f-region").select_option(REGION)
    page.get_by_label("Hourly").check()
    shoot(page, "operator-bucket")
    page.get_by_role("button", name="Save & Continue").click()

    # The IAM role step of the draft, under the operator's own URLs.
    # (The tenant has no rows in the source: the step says so.)
    page.wait_for_url(re.compile(r"/connections/[0-9a-f]+/setup/role(\?notice=no_rows)?$"))
    role_name = page.locator("#role-name").inner_text()
    trust = json.loads(page.locator("#trust-policy").inner_text())
    with page.expect_download() as download:
        page.locator(".copy-block", has=page.locator("#permissions-policy")).get_by_role(
            "link", name="Download JSON"
        ).click()
    permissions = json.loads(Path(download.value.path()).read_text())
    assert json.loads(page.locator("#permissions-policy").inner_text()) == permissions
    shoot(page, "operator-role")
    customer = aws.customer(CUSTOMER, REGION)
    customer.create_bucket(f"{tenant}-data")
    customer.create_role(role_name, trust, permissions)
    page.get_by_label("I have completed these steps in my AWS account.").check()
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(re.compile(r"/setup/validate$"))
    page.get_by_role("button", name="Validate").click()
    page.get_by_role("heading", name="Validation Successful").wait_for()
    page.get_by_role("button", name="Activate Connection").click()

    # Activated: the operator lands on the connection's page.
    page.wait_for_url(re.compile(r"/connections/[0-9a-f]+\?notice=activated$"))
    assert page.locator("h1 .badge").inner_text() == "Active"
    shoot(page, "operator-activated")
    made = served.api("get", f"/api/v1/connections/{name}")
    assert made["tenant"] == tenant and made["status"] == "active"
    assert made["frequency_minutes"] == 60
    context.close()


def test_a_drafts_page_shows_its_policies_and_sends_a_link_that_continues_it(
    served: Served, browser: Any, shoot: Any
) -> None:
    tenant = f"draft-{uuid.uuid4().hex[:6]}"
    draft = served.api(
        "post",
        "/api/v1/connections",
        json={
            "name": f"{tenant}-s3",
            "tenant": tenant,
            "type": "s3",
            "account_id": CUSTOMER,
            "bucket": f"{tenant}-data",
            "region": REGION,
        },
    )
    policies = served.api("get", f"/api/v1/connections/{draft['id']}/policies")
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = sign_in(context, served, f"/connections/{draft['id']}")

    section = page.get_by_role("region", name="IAM role to create")
    assert section.locator("#draft-role-name").inner_text() == policies["role_name"]
    assert section.locator("#draft-external-id").inner_text() == policies["external_id"]
    assert json.loads(page.locator("#draft-trust-policy").inner_text()) == policies["trust_policy"]
    for which in ("trust", "permissions"):
        with page.expect_download() as download:
            page.locator(".copy-block", has=page.locator(f"#draft-{which}-policy")).get_by_role(
                "link", name="Download JSON"
            ).click()
        assert json.loads(Path(download.value.path()).read_text()) == policies[f"{which}_policy"]
    shoot(page, "draft-policies")

    page.get_by_role("button", name="Send a link for this draft").click()
    url = page.locator("#draft-link-url").inner_text()
    assert url.startswith(f"{served.base_url}/connect/")
    shoot(page, "draft-link")

    # The recipient opens it and continues the draft at the IAM role step.
    recipient = browser.new_context(viewport=DESKTOP).new_page()
    recipient.set_content(f'<a id="invite" href="{url}">set up your bucket</a>')
    recipient.click("#invite")
    recipient.wait_for_url(re.compile(r"/connect/role$"))
    assert recipient.locator("#role-name").inner_text() == policies["role_name"]
    assert recipient.locator("#external-id").inner_text() == policies["external_id"]
    links = served.api("get", "/api/v1/links")["items"]
    assert [x["connection_id"] for x in links if x["tenant"] == tenant] == [draft["id"]]
    recipient.context.close()
    context.close()
