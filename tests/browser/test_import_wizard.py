"""An import connection end to end in Chromium (seed 001): the recipient chooses "Let your
vendor read from my S3 bucket" and the import, fills in the bucket, creates the role from the
generated read-only policy, validates (list, read, write refused, with IAM enforced) and
activates; the scheduler's first run loads the good file and rejects the bad one; the
recipient sees the run and the rejected file with its line, column and value, and the operator
retries it from the connection's page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byob.demo.emulator import LocalAws
from tests.browser.conftest import DESKTOP, Served, serving
from tests.browser.test_operator_wizard import sign_in
from tests.browser.test_wizard import open_link_from_email
from tests.support import CUSTOMER, pg_exec

pytestmark = pytest.mark.browser
REGION = "eu-west-1"
BUCKET = "acme-usage"
BAD_KEY = "drop/2026/02-bad.csv"
USAGE_IMPORT = """
[[imports]]
name = "usage_events"
table = "usage_events"
tenant_column = "tenant_id"
format = "csv"
columns = { account = "text", quantity = "integer" }
key_pattern = "**.csv"
"""


@pytest.fixture
def import_served(tmp_path: Path, source_url: str, aws: LocalAws) -> Iterator[Served]:
    """A server whose models file declares the usage_events import, with its table and ledger
    in the source, and a real IAM user for byob (so IAM enforcement can be switched on)."""
    pg_exec(
        source_url,
        "CREATE TABLE IF NOT EXISTS usage_events "
        "(tenant_id text NOT NULL, account text, quantity integer)",
    )
    with serving(
        tmp_path, source_url, aws.endpoint_url, imports=USAGE_IMPORT, **aws.create_service_user()
    ) as srv:
        srv.cli("migrate-imports", "--json")
        yield srv


def wait_for_run(page: Any) -> None:
    """Reload until the first import run succeeded (the scheduler starts it after activation)."""
    for _ in range(120):
        runs = page.locator("table.import-runs tbody tr")
        if runs.filter(has_text="Succeeded").count():
            return
        assert runs.filter(has_text="Failed").count() == 0, runs.first.inner_text()
        page.wait_for_timeout(500)
        page.reload()
    pytest.fail("the first import run did not succeed in 60 s")


def test_recipient_sets_up_an_import_and_sees_its_rejected_file(
    import_served: Served, browser: Any, aws: LocalAws, shoot: Any
) -> None:
    served = import_served
    link = served.link("acme")
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.base_url)
    page = context.new_page()

    # 1. Choose AWS S3 type: export (today's choices) or let the vendor read; the import's
    # format and columns say what to drop.
    open_link_from_email(page, link["url"])
    assert page.get_by_label("Bring your own S3 bucket").is_visible()
    page.get_by_label("Let your vendor read from my S3 bucket").check()
    assert page.get_by_label("Bring your own S3 bucket").is_hidden()
    choice = page.locator("#import-choices")
    assert choice.is_visible()
    assert page.locator("#import-usage_events").is_checked()
    text = choice.inner_text()
    assert "usage_events" in text and "CSV with a header line" in text
    assert "account text" in text and "quantity integer" in text and "**.csv" in text
    shoot(page, "type-import")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/connect/bucket\?direction=import&import=usage_events$"))

    # 2. The bucket step: the same fields and rules, words for an import.
    main = page.locator("main").inner_text()
    assert "byob reads the files you put under the base path" in main
    assert "How often byob looks for new files" in main
    assert page.locator("#f-schema").count() == 0  # no Athena for an import
    page.locator("#f-name").fill("acme-usage")
    page.locator("#f-account_id").fill(CUSTOMER)
    page.locator("#f-bucket").fill(BUCKET)
    page.locator("#f-region").select_option(REGION)
    page.locator("#f-base_path").fill("/drop")
    page.locator("#f-base_path").blur()
    page.wait_for_function("() => document.getElementById('f-base_path-error').textContent !== ''")
    page.locator("#f-base_path").fill("drop")
    shoot(page, "bucket-import")
    page.get_by_role("button", name="Save & Continue").click()

    # 3. The IAM role: the generated name, the trust policy with the external ID, and the
    # read-only permissions policy (list and get under the base path, nothing else).
    page.wait_for_url(re.compile(r"/connect/role$"))
    assert (
        "list and read the files under s3://acme-usage/drop/" in page.locator("main").inner_text()
    )
    role_name = page.locator("#role-name").inner_text()
    external_id = page.locator("#external-id").inner_text()
    assert role_name.startswith("byob-acme-usage")
    trust = json.loads(page.locator("#trust-policy").inner_text())
    assert trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] == external_id
    permissions = json.loads(page.locator("#permissions-policy").inner_text())
    assert [(s["Action"], s["Resource"]) for s in permissions["Statement"]] == [
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}"),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/drop/*"),
    ]
    shoot(page, "role-import")
    page.get_by_label("I have completed these steps in my AWS account.").check()
    page.get_by_role("button", name="Continue").click()

    # The recipient creates bucket and role and drops two files; IAM is enforced from now on.
    customer = aws.customer(CUSTOMER, REGION)
    customer.create_bucket(BUCKET)
    customer.create_role(role_name, trust, permissions)
    s3 = customer.client("s3")
    s3.put_object(Bucket=BUCKET, Key="drop/2026/01-good.csv", Body=b"account,quantity\na,1\n")
    s3.put_object(Bucket=BUCKET, Key=BAD_KEY, Body=b"account,quantity\nb,2\nc,many\n")
    aws.enforce_iam(True)
    try:
        # 4. Validate: the import checks, each with its message.
        page.wait_for_url(re.compile(r"/connect/validate$"))
        assert "list the files under s3://acme-usage/drop/" in page.locator("main").inner_text()
        page.get_by_role("button", name="Validate").click()
        page.get_by_role("heading", name="Validation Successful").wait_for()
        checks = page.locator("#result .checks").inner_text()
        for label in (
            "List the files under the base path",
            "Read a file",
            "The role cannot write to your bucket",
        ):
            assert label in checks, checks
        assert "2 of them files of import 'usage_events'" in checks
        assert "read the first" in checks and "PutObject was refused" in checks
        shoot(page, "validate-import")
        page.get_by_role("button", name="Activate Connection").click()

        # 5. Active: what byob reads, and what to put there.
        page.wait_for_url(re.compile(r"/connect/done$"))
        done = page.locator("main").inner_text()
        assert "Your connection is active" in done
        assert "will read the files you put under s3://acme-usage/drop/" in done
        assert "What to put there" in done and "quantity integer" in done
        assert "Query it" not in done and "Check a manifest" not in done
        shoot(page, "done-import")

        # The scheduler's first run: one file imported, one rejected, shown to the recipient.
        page.goto(f"{served.base_url}/connect/delivery")
        wait_for_run(page)
    finally:
        aws.enforce_iam(False)
    run = page.locator("table.import-runs tbody tr").first.inner_text()
    assert re.search(r"Succeeded.*\t2\t1\t1\t0\t1\t", run, re.S), run
    rejected = page.locator("#rejected")
    assert BAD_KEY in rejected.inner_text()
    problem = rejected.locator("table.problems tbody tr").first.inner_text()
    assert problem.split("\t")[:3] == ["3", "quantity", "many"], problem
    assert rejected.get_by_role("button", name=re.compile("Retry")).count() == 0
    shoot(page, "delivery-import")

    # 6. The operator sees direction, import, the run and the rejected file, and retries it.
    operator_context = browser.new_context(viewport=DESKTOP)
    operator = sign_in(operator_context, served, "/connections")
    operator.get_by_role("row").filter(has_text="acme-usage").get_by_role(
        "link", name="acme-usage"
    ).click()
    details = operator.locator("dl.details").first.inner_text()
    assert "import: byob reads the files the tenant puts under s3://acme-usage/drop/" in details
    assert "usage_events" in details
    assert operator.locator("table.import-runs tbody tr").count() == 1
    operator.locator("#rejected").get_by_role("button", name=f"Retry {BAD_KEY}").click()
    operator.get_by_role("status").filter(has_text="The file is no longer rejected").wait_for()
    assert "No rejected files." in operator.locator("#rejected").inner_text()
    shoot(operator, "operator-import")
    context.close()
    operator_context.close()
