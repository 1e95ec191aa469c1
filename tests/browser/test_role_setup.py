"""The IAM role step's one-step options in Chromium: CloudFormation (template copied and
downloaded; over http, no Launch stack link and a plain word why), Terraform and AWS CLI, each
copied as the recipient would and carrying exactly the trust and permissions policies shown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import DESKTOP, Served
from tests.browser.test_wizard import open_link_from_email
from tests.support import CUSTOMER
from tests.unit.test_role_setup import cli_calls, terraform_documents

pytestmark = pytest.mark.browser


def copied(page: Any, block: str) -> str:
    page.locator(f'[data-copy="{block}"]').click()
    return str(page.evaluate("navigator.clipboard.readText()"))


def test_the_role_step_offers_cloudformation_terraform_and_the_cli(
    served: Served, browser: Any, aws: Any, shoot: Any
) -> None:
    link = served.link("acme")
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.base_url)
    page = context.new_page()
    open_link_from_email(page, link["url"])
    page.get_by_label("Bring your own S3 bucket").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/bucket"))
    page.locator("#f-name").fill("acme-oneclick")
    page.locator("#f-account_id").fill(CUSTOMER)
    page.locator("#f-bucket").fill("acme-oneclick")
    page.locator("#f-region").select_option("eu-west-1")
    page.locator("#f-base_path").fill("exports")
    page.get_by_role("button", name="Save & Continue").click()
    page.wait_for_url(re.compile(r"/connect/role"))

    trust = json.loads(page.locator("#trust-policy").inner_text())
    permissions = json.loads(page.locator("#permissions-policy").inner_text())
    role_name = page.locator("#role-name").inner_text()

    # CloudFormation is open first; byob is served over http here, so no Launch stack link.
    assert page.locator("#setup-cloudformation").get_attribute("open") is not None
    assert page.locator("#launch-stack").count() == 0
    assert (
        "can only fetch the template from an https address"
        in page.locator("#launch-note").inner_text()
    )
    template = json.loads(copied(page, "cloudformation-template"))
    properties = template["Resources"]["ByobRole"]["Properties"]
    assert properties["RoleName"] == role_name
    assert properties["AssumeRolePolicyDocument"] == trust
    assert properties["Policies"][0]["PolicyDocument"] == permissions
    with page.expect_download() as download:
        page.locator("#setup-cloudformation").get_by_role("link", name="Download JSON").click()
    assert json.loads(Path(download.value.path()).read_text()) == template
    shoot(page, "role-cloudformation")

    page.locator("summary", has_text="Terraform").click()
    page.locator('[data-copy="terraform-snippet"]').wait_for(state="visible")
    assert terraform_documents(copied(page, "terraform-snippet")) == [trust, permissions]

    page.locator("summary", has_text="AWS CLI").click()
    page.locator('[data-copy="aws-cli-commands"]').wait_for(state="visible")
    [(_, created), (_, put)] = cli_calls(copied(page, "aws-cli-commands"))
    assert created["RoleName"] == put["RoleName"] == role_name
    assert json.loads(created["AssumeRolePolicyDocument"]) == trust
    assert json.loads(put["PolicyDocument"]) == permissions
    shoot(page, "role-aws-cli")
    context.close()
