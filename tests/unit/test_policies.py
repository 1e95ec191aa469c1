"""IAM material shown to the recipient: golden policies, external IDs and role names."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byob.domain import policies

SERVICE = "arn:aws:iam::111122223333:role/byob-service"
EXTERNAL_ID = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"
IAM_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")


def test_trust_policy_golden() -> None:
    assert policies.trust_policy(SERVICE, EXTERNAL_ID) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:role/byob-service"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"sts:ExternalId": "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"}
                },
            }
        ],
    }


def test_s3_policy_golden_with_base_path() -> None:
    assert policies.s3_permissions_policy("bkt", "base") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ByobWriteUnderBasePath",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": "arn:aws:s3:::bkt/base/*",
            }
        ],
    }


def test_s3_policy_golden_without_base_path() -> None:
    assert policies.s3_permissions_policy("bkt", "") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ByobWriteUnderBasePath",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": "arn:aws:s3:::bkt/*",
            }
        ],
    }


@pytest.mark.parametrize(
    ("base", "resource"),
    [
        ("exports/billing", "arn:aws:s3:::bkt/exports/billing/*"),
        ("exports/billing/", "arn:aws:s3:::bkt/exports/billing/*"),
    ],
)
def test_s3_policy_scopes_to_nested_base_path(base: str, resource: str) -> None:
    (statement,) = policies.s3_permissions_policy("bkt", base)["Statement"]
    assert statement["Resource"] == resource


def test_s3_policy_grants_no_read_or_list() -> None:
    (statement,) = policies.s3_permissions_policy("bkt", "base")["Statement"]
    assert not any(a.startswith(("s3:Get", "s3:List")) for a in statement["Action"])
    assert "*" not in statement["Action"]


def test_athena_policy_golden() -> None:
    """The seed 003 policy with ACCOUNT_ID, WORKGROUP, BUCKET_NAME and SCHEMA filled in, plus
    s3:AbortMultipartUpload."""
    got = policies.athena_permissions_policy(
        account_id="123456789012", workgroup="primary", bucket="acme-lake", schema="acme_billing"
    )
    assert got == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowAthenaAccess",
                "Effect": "Allow",
                "Action": [
                    "athena:GetQueryResults",
                    "athena:StartQueryExecution",
                    "athena:StartSession",
                    "athena:GetDatabase",
                    "athena:GetDataCatalog",
                    "athena:GetWorkGroup",
                    "athena:GetTableMetadata",
                    "athena:GetQueryExecution",
                ],
                "Resource": ["arn:aws:athena:*:123456789012:workgroup/primary"],
            },
            {
                "Sid": "AllowGlueAccessToDestinationDatabaseAndTables",
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabases",
                    "glue:GetDatabase",
                    "glue:GetTables",
                    "glue:GetTable",
                    "glue:GetPartitions",
                    "glue:CreateTable",
                    "glue:CreateDatabase",
                    "glue:UpdateTable",
                    "glue:DeleteTable",
                ],
                "Resource": [
                    "arn:aws:glue:*:123456789012:catalog",
                    "arn:aws:glue:*:123456789012:database/acme_billing",
                    "arn:aws:glue:*:123456789012:database/default",
                    "arn:aws:glue:*:123456789012:table/acme_billing/*",
                ],
            },
            {
                "Sid": "AllowS3AccessToBucket",
                "Effect": "Allow",
                "Action": [
                    "s3:PutObject",
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": ["arn:aws:s3:::acme-lake", "arn:aws:s3:::acme-lake/*"],
            },
        ],
    }


def test_athena_policy_has_no_placeholders_and_uses_the_workgroup() -> None:
    doc = policies.athena_permissions_policy(
        account_id="999988887777", workgroup="analytics", bucket="b-1", schema="s"
    )
    text = json.dumps(doc)
    for placeholder in ("ACCOUNT_ID", "WORKGROUP", "BUCKET_NAME", "SCHEMA"):
        assert placeholder not in text
    assert "arn:aws:athena:*:999988887777:workgroup/analytics" in text


def test_policies_are_json_serialisable_round_trip() -> None:
    for doc in (
        policies.trust_policy(SERVICE, EXTERNAL_ID),
        policies.s3_permissions_policy("bkt", "base"),
        policies.athena_permissions_policy(
            account_id="1" * 12, workgroup="w", bucket="b", schema="s"
        ),
    ):
        assert json.loads(json.dumps(doc)) == doc


# --- external IDs ---------------------------------------------------------------------------


def test_external_ids_are_40_alphanumerics_and_unique() -> None:
    ids = [policies.new_external_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for value in ids:
        assert re.fullmatch(r"[A-Za-z0-9]{40}", value), value
    # Drawn from the whole alphabet, not only digits or one case.
    pooled = "".join(ids)
    assert any(c.isupper() for c in pooled)
    assert any(c.islower() for c in pooled)
    assert any(c.isdigit() for c in pooled)


def test_external_id_fits_iam_rules() -> None:
    value = policies.new_external_id()
    assert re.fullmatch(r"[\w+=,.@:/-]{2,1224}", value)
    assert len(value) >= 32


# --- role names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acme", "byob-acme-ab12cd"),
        ("Acme-S3.prod_1", "byob-Acme-S3.prod_1-ab12cd"),
        ("weird name/with*chars", "byob-weird-name-with-chars-ab12cd"),
        ("***", "byob-connection-ab12cd"),
        ("", "byob-connection-ab12cd"),
    ],
)
def test_role_name_examples(name: str, expected: str) -> None:
    assert policies.role_name(name, "ab12cd") == expected


@pytest.mark.parametrize(
    "name",
    ["x" * 63, "a" * 200, "long-connection-name-" * 5, "ünïcødé-" * 10, "a b c d e f g " * 10],
)
def test_role_name_for_long_or_odd_names(name: str) -> None:
    got = policies.role_name(name, "ab12cd")
    assert IAM_NAME.fullmatch(got), got
    assert len(got) <= 64
    assert got.startswith("byob-")
    assert got.endswith("-ab12cd")
    sanitised = re.sub(r"[^A-Za-z0-9+=,.@_-]", "-", name).strip("-")
    body = got[len("byob-") : -len("-ab12cd")]
    assert body and sanitised.startswith(body)
    assert len(body) == min(len(sanitised), 64 - len("byob-") - len("-ab12cd"))


def test_role_name_keeps_a_valid_connection_name_whole() -> None:
    name = "acme-billing.prod_2025"
    assert name in policies.role_name(name, "ab12cd")


@settings(database=None)
@given(name=st.text(max_size=120), suffix=st.from_regex(r"[a-z0-9]{6}", fullmatch=True))
def test_role_name_property_always_valid(name: str, suffix: str) -> None:
    got = policies.role_name(name, suffix)
    assert IAM_NAME.fullmatch(got), got
    assert got.startswith("byob-")
    assert got.endswith(f"-{suffix}")


def test_role_arn() -> None:
    assert policies.role_arn("123456789012", "byob-acme-ab12cd") == (
        "arn:aws:iam::123456789012:role/byob-acme-ab12cd"
    )
