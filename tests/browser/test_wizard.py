"""The recipient's wizard and the operator's pages, end to end in Chromium, as the issue
describes: a recipient opens a link, trips every field rule, completes the wizard, sees a
failing validation, creates the role, revalidates and activates; the operator sees the
connection Active and its first transfer in history."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from byob.domain import fields
from byob.domain.connections import _athena_fields
from byob.errors import InvalidFieldError
from tests.browser.conftest import ACME_ROWS, DESKTOP, PHONE, Served, assert_fits
from tests.support import CUSTOMER

pytestmark = pytest.mark.browser
REGION = "eu-west-1"


def rule_message(check: Any, *args: Any, **kwargs: Any) -> str:
    """The message byob.domain's own rule gives for a value (what the API says too)."""
    with pytest.raises(InvalidFieldError) as caught:
        check(*args, **kwargs)
    return caught.value.message


def open_link_from_email(page: Any, url: str) -> None:
    """Click the link the way a recipient does: from another site (their mail client)."""
    page.set_content(
        f'<p>Your vendor invites you: <a id="invite" href="{url}">set up your bucket</a></p>'
    )
    page.click("#invite")
    page.wait_for_url(re.compile(r"/connect/type$"))


def set_field(page: Any, name: str, value: str, *, select: bool = False) -> Any:
    """Enter a value as a person does (leaving the field runs its live check)."""
    field = page.locator(f"#f-{name}")
    if select:
        field.select_option(value)
    else:
        field.fill(value)
        field.blur()
    return field


def expect_field_error(
    page: Any, name: str, value: str, message: str, *, select: bool = False
) -> None:
    """Type a bad value; the live check shows the rule's exact message next to the field."""
    field = set_field(page, name, value, select=select)
    error = page.locator(f"#f-{name}-error")
    error.wait_for(state="visible")
    page.wait_for_function(
        "([id, text]) => document.getElementById(id).textContent === text",
        arg=[f"f-{name}-error", message],
    )
    assert field.get_attribute("aria-invalid") == "true"
    assert f"f-{name}-error" in (field.get_attribute("aria-describedby") or "")


def clear_field_error(page: Any, name: str, value: str, *, select: bool = False) -> None:
    field = set_field(page, name, value, select=select)
    page.wait_for_function(
        "id => document.getElementById(id).textContent === ''", arg=f"f-{name}-error"
    )
    assert field.get_attribute("aria-invalid") is None


def wait_for_transfers(page: Any, succeeded: int) -> None:
    """Reload the transfer history until this many transfers succeeded (they run in the
    background); a failed one fails the test with its error."""
    for _ in range(120):
        rows = page.locator("table.transfers tbody tr")
        failed = rows.filter(has_text="Failed")
        assert failed.count() == 0, failed.first.inner_text()
        if rows.filter(has_text="Succeeded").count() >= succeeded:
            return
        page.wait_for_timeout(500)
        page.reload()
    pytest.fail(f"fewer than {succeeded} transfers succeeded in 60 s")


def test_recipient_completes_the_wizard_and_the_operator_sees_the_first_transfer(
    strict_served: Served, browser: Any, aws: Any, shoot: Any
) -> None:
    served = strict_served
    link = served.link("acme", via_cli=True)
    key = served.operator_key()
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.base_url)
    page = context.new_page()

    # 1. The link: the landing page drops the token from the URL and history.
    open_link_from_email(page, link["url"])
    assert link["token"] not in page.url
    assert page.get_by_role("heading", name="Create a new connection").is_visible()
    shoot(page, "type", readme="wizard-1-type")
    page.get_by_label("Bring your own S3 bucket").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/bucket"))

    # 2. Every field rule, while typing, with the API's own messages.
    bad = {
        "name": ("-acme", rule_message(fields.connection_name, "-acme")),
        "account_id": ("12345", rule_message(fields.account_id, "12345")),
        "bucket": ("Acme_Data", rule_message(fields.bucket_name, "Acme_Data")),
        "base_path": ("/exports", rule_message(fields.base_path, "/exports")),
    }
    for name, (value, message) in bad.items():
        expect_field_error(page, name, value, message)
    expect_field_error(page, "region", "", rule_message(fields.region, ""), select=True)
    page.locator("#f-base_path").fill("exports/../x")
    page.locator("#f-base_path").blur()
    page.wait_for_function(
        "t => document.getElementById('f-base_path-error').textContent === t",
        arg=rule_message(fields.base_path, "exports/../x"),
    )
    page.locator("#f-account_id").fill(CUSTOMER)
    foreign = "arn:aws:iam::999999999999:role/mine"
    expect_field_error(
        page,
        "role_arn",
        foreign,
        rule_message(fields.role_arn, foreign, expected_account_id=CUSTOMER),
    )
    shoot(page, "bucket-live-errors")
    clear_field_error(page, "role_arn", "")
    for name, value in {
        "name": "acme-s3",
        "account_id": CUSTOMER,
        "base_path": "exports/billing",
    }.items():
        clear_field_error(page, name, value)
    clear_field_error(page, "region", REGION, select=True)

    # ... and again on the server, when the form is sent with a bad value.
    page.locator("#f-bucket").fill("Acme_Data")
    page.get_by_role("button", name="Save & Continue").click()
    page.wait_for_load_state()
    assert page.locator("#f-bucket-error").inner_text() == rule_message(
        fields.bucket_name, "Acme_Data"
    )
    assert page.locator("#f-bucket").get_attribute("aria-invalid") == "true"
    assert page.locator("#form-errors").is_visible()
    assert page.locator("#f-name").input_value() == "acme-s3"  # what was typed is kept
    shoot(page, "bucket-server-errors")
    clear_field_error(page, "bucket", "acme-data")  # the list of problems goes with it
    assert page.locator("#form-errors").is_hidden()
    shoot(page, "bucket-fixed", readme="wizard-2-bucket")
    page.get_by_role("button", name="Save & Continue").click()

    # 3. The IAM role: name, external ID as text (never an input), policies with copy buttons.
    page.wait_for_url(re.compile(r"/connect/role$"))
    shoot(page, "role", readme="wizard-3-role")
    role_name = page.locator("#role-name").inner_text()
    external_id = page.locator("#external-id").inner_text()
    assert role_name.startswith("byob-acme-s3") and len(external_id) >= 32
    assert page.locator("#external-id").evaluate("e => e.tagName") == "CODE"
    assert (
        page.locator("input, textarea, select").evaluate_all(
            "(els, x) => els.filter(e => e.value === x).length", external_id
        )
        == 0
    )
    page.locator('[data-copy="trust-policy"]').click()
    trust = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] == external_id
    with page.expect_download() as download:
        page.locator(".copy-block", has=page.locator("#permissions-policy")).get_by_role(
            "link", name="Download JSON"
        ).click()
    permissions = json.loads(Path(download.value.path()).read_text())
    assert json.loads(page.locator("#permissions-policy").inner_text()) == permissions
    assert page.get_by_role("button", name="Continue").is_disabled()  # until confirmed
    page.get_by_label("I have completed these steps in my AWS account.").check()
    page.get_by_role("button", name="Continue").click()

    # 4. Validate before bucket and role exist: it fails, says what to fix, activation stays
    # off. (The emulator's AssumeRole does not check that a role exists, even with IAM
    # enforcement on, so the missing bucket is what it reports; on AWS assume_role fails.)
    page.wait_for_url(re.compile(r"/connect/validate$"))
    assert page.get_by_role("button", name="Activate Connection").is_disabled()
    page.get_by_role("button", name="Validate").click()
    page.get_by_role("heading", name="Validation Failed").wait_for()
    failed = page.locator(".check-failed")
    assert failed.count() == 1
    assert "The bucket exists in the chosen region" in failed.inner_text()
    assert "NoSuchBucket" in failed.inner_text()
    assert "bucket acme-data does not exist; create it in eu-west-1" in failed.inner_text()
    assert "What to fix:" in failed.inner_text()
    assert page.locator(".check-skipped").count() == 2
    assert page.get_by_role("button", name="Activate Connection").is_disabled()
    assert page.get_by_role("button", name="Revalidate").is_visible()
    shoot(page, "validation-failed")

    # The recipient creates bucket and role in their account, with what the page gave them;
    # from now on IAM is enforced, so the policies shown must really grant what byob needs.
    customer = aws.customer(CUSTOMER, REGION)
    customer.create_bucket("acme-data")
    customer.create_role(role_name, trust, permissions)
    aws.enforce_iam(True)

    # A refresh resumes where they were.
    page.goto(f"{served.base_url}/connect")
    page.wait_for_url(re.compile(r"/connect/validate$"))
    page.get_by_role("button", name="Revalidate").click()
    page.get_by_role("heading", name="Validation Successful").wait_for()
    assert page.locator(".check-failed").count() == 0
    shoot(page, "validation-passed", readme="wizard-4-validate")
    page.get_by_role("button", name="Activate Connection").click()

    # 5. Active: what arrives where, when, and how to query it.
    page.wait_for_url(re.compile(r"/connect/done$"))
    text = page.locator("main").inner_text()
    assert "Your connection is active" in text
    assert "s3://acme-data/exports/billing/invoices/dt=YYYY-MM-DD/" in text
    assert (
        "read_parquet('s3://acme-data/exports/billing/invoices/*/*.parquet', hive_partitioning = true)"
        in text
    )
    assert "The first transfer, a full copy of each table, starts within moments" in text
    shoot(page, "done", readme="wizard-done")
    page.set_viewport_size(PHONE)
    assert_fits(page)
    shoot(page, "done-phone")

    # The link is spent now.
    again = context.new_page()
    response = again.goto(link["url"])
    assert response.status == 410 and "was used" in again.locator("main").inner_text()

    # 6. The operator: Active in Manage Connections; the scheduler ran the first transfer.
    operator = browser.new_context(viewport=DESKTOP).new_page()
    operator.goto(f"{served.base_url}/connections")
    operator.get_by_label("API key").fill(key)
    operator.get_by_role("button", name="Sign in").click()
    operator.wait_for_url(re.compile(r"/connections$"))
    row = operator.get_by_role("row").filter(has_text="acme-s3")
    assert "Active" in row.inner_text() and "s3://acme-data/exports/billing" in row.inner_text()
    shoot(operator, "operator-connections", readme="operator-connections")
    row.get_by_role("link", name="acme-s3").click()
    operator.get_by_role("link", name="Transfer history").click()
    wait_for_transfers(operator, 1)
    first = operator.locator("table.transfers tbody tr").first.inner_text()
    assert "invoices" in first and "full_refresh" in first and f"\t{ACME_ROWS}\t" in first, first
    shoot(operator, "operator-transfers")

    # Run now: a second, incremental transfer (nothing new in the source: no rows).
    operator.get_by_role("navigation", name="Breadcrumb").get_by_role(
        "link", name="acme-s3"
    ).click()
    for _ in range(20):  # the first transfer's lock is let go just after it succeeds
        operator.get_by_role("button", name="Run now").click()
        operator.wait_for_load_state()
        if operator.get_by_role("status").filter(has_text="Transfers started").count():
            break
        operator.wait_for_timeout(250)
    operator.get_by_role("link", name="Transfer history").click()
    wait_for_transfers(operator, 2)
    assert "incremental" in operator.locator("table.transfers tbody tr").first.inner_text()
    operator.get_by_role("navigation", name="Breadcrumb").get_by_role(
        "link", name="acme-s3"
    ).click()
    assert "Validation history" in operator.locator("main").inner_text()

    # The operator revalidates, pauses and resumes.
    operator.get_by_role("button", name="Validate").click()
    operator.get_by_role("status").filter(has_text="Validation passed").wait_for()
    assert operator.locator("details.validation").count() == 3  # failed, passed, passed
    operator.get_by_role("button", name="Pause").click()
    operator.get_by_role("status").filter(has_text="The connection is paused").wait_for()
    assert operator.locator("h1 .badge").inner_text() == "Paused"
    assert operator.get_by_role("button", name="Run now").count() == 0
    operator.get_by_role("button", name="Resume").click()
    operator.get_by_role("status").filter(has_text="The connection is active").wait_for()
    assert operator.locator("h1 .badge").inner_text() == "Active"
    shoot(operator, "operator-connection", readme="operator-connection")
    operator.set_viewport_size(PHONE)
    assert_fits(operator)
    shoot(operator, "operator-connection-phone")
    aws.enforce_iam(False)
    assert customer.keys("acme-data", "exports/billing/invoices/dt=")
    context.close()
    operator.context.close()


def test_hmac_on_a_narrow_screen_never_shows_the_secret(
    served: Served, browser: Any, aws: Any, shoot: Any
) -> None:
    tenant = f"narrow-{uuid.uuid4().hex[:6]}"
    link = served.link(tenant)
    iam = aws.customer(CUSTOMER, "us-east-1").client("iam")
    iam.create_user(UserName="byob-writer")
    access_key = iam.create_access_key(UserName="byob-writer")["AccessKey"]
    secret = access_key["SecretAccessKey"]
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    pages_seen = 0

    def no_secret() -> None:
        nonlocal pages_seen
        assert secret not in page.content()
        pages_seen += 1

    open_link_from_email(page, link["url"])
    page.get_by_label("S3 bucket with AWS Athena").check()
    assert_fits(page)
    shoot(page, "type-phone")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/bucket\?type=athena"))
    expect_field_error(
        page,
        "schema",
        "Billing",
        rule_message(
            _athena_fields, workgroup="primary", schema="Billing", database="byob_probe_db"
        ),
    )
    page.locator("#f-schema").fill("billing")
    page.locator("#f-database").fill("billing")
    page.locator("#f-database").blur()
    page.wait_for_function("() => document.getElementById('f-database-error').textContent !== ''")
    page.locator("#f-database").fill("queries")
    for name, value in {
        "name": f"{tenant}-athena",
        "account_id": CUSTOMER,
        "bucket": "narrow-data",
    }.items():
        page.locator(f"#f-{name}").fill(value)
    page.locator("#f-region").select_option("us-east-1")
    page.get_by_label("Access key of an IAM user").check()
    assert page.locator("#f-role_arn").is_hidden()
    expect_field_error(
        page, "access_key_id", "akia-lower", rule_message(fields.access_key_id, "akia-lower")
    )
    page.locator("#f-access_key_id").fill(access_key["AccessKeyId"])
    page.locator("#f-secret_access_key").fill(secret)
    page.locator("#f-bucket").fill("Narrow_Data")  # refused by the server: the form comes back
    page.get_by_role("button", name="Save & Continue").click()
    page.locator("#form-errors").wait_for()
    no_secret()
    assert page.locator("#f-secret_access_key").input_value() == ""
    page.locator("#f-bucket").fill("narrow-data")
    page.locator("#f-secret_access_key").fill(secret)
    shoot(page, "bucket-hmac-phone")
    page.get_by_role("button", name="Save & Continue").click()

    # This tenant has no rows in the vendor's data: the recipient is told at once.
    page.wait_for_url(re.compile(r"/connect/role\?notice=no_rows$"))
    assert page.locator(".alert-warn").inner_text().startswith("Your vendor's data has no rows")
    assert page.get_by_role("heading", name="IAM policy").is_visible()
    no_secret()
    assert_fits(page)
    shoot(page, "policy-phone")
    page.get_by_label("I have completed these steps in my AWS account.").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/validate$"))
    page.get_by_role("button", name="Validate").click()
    page.locator("#result .checks").wait_for()
    no_secret()
    assert_fits(page)
    shoot(page, "validation-phone")

    page.goto(f"{served.base_url}/connect/bucket")
    assert page.locator("#f-secret_access_key").input_value() == ""
    assert "a secret is stored" in page.locator("main").inner_text()
    assert_fits(page)
    shoot(page, "bucket-stored-secret-phone")
    no_secret()
    assert pages_seen == 4
    context.close()
