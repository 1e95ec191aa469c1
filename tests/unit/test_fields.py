"""Field rules for connections: account ID, bucket, region, base path, role ARN."""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from byob.domain import fields
from byob.errors import InvalidFieldError

ACCOUNT = "123456789012"

# The 34 commercial regions listed in shared/reference/aws-facts.md, typed out independently.
COMMERCIAL_REGIONS = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "ca-west-1",
    "mx-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
]

FORBIDDEN_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
FORBIDDEN_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
NO_DB = settings(database=None, suppress_health_check=[HealthCheck.too_slow])


def refused(call, *args, field: str, **kwargs) -> InvalidFieldError:
    with pytest.raises(InvalidFieldError) as info:
        call(*args, **kwargs)
    assert info.value.field == field
    assert info.value.code == "invalid_field"
    return info.value


# --- account ID -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["123456789012", "000000000000", "999999999999"])
def test_account_id_accepts_twelve_digits(value: str) -> None:
    assert fields.account_id(value) == value


def test_account_id_strips_surrounding_whitespace() -> None:
    assert fields.account_id("  123456789012\n") == "123456789012"


@pytest.mark.parametrize(
    "value",
    [
        "12345678901",  # 11 digits
        "1234567890123",  # 13 digits
        "12345678901a",
        "abcdefghijkl",
        "1234 5678 9012",
        "1234-5678-9012",
        "123456 789012",
        "+23456789012",
        "-23456789012",
        "12345678901.",
    ],
)
def test_account_id_refuses_anything_but_twelve_digits(value: str) -> None:
    err = refused(fields.account_id, value, field="account_id")
    assert repr(value.strip()) in err.message
    assert "12 digits" in err.message


@pytest.mark.parametrize(
    "value",
    ["١٢٣٤٥٦٧٨٩٠١٢", "１２３４５６７８９０１２"],  # Arabic-Indic and fullwidth digits
    ids=["arabic-indic", "fullwidth"],
)
def test_account_id_refuses_non_ascii_digits(value: str) -> None:
    refused(fields.account_id, value, field="account_id")


@NO_DB
@given(st.text(alphabet=string.digits, min_size=12, max_size=12))
def test_account_id_property_any_twelve_ascii_digits_accepted(value: str) -> None:
    assert fields.account_id(value) == value


@NO_DB
@given(st.text(alphabet=string.digits, max_size=40).filter(lambda s: len(s) != 12))
def test_account_id_property_any_other_digit_count_refused(value: str) -> None:
    refused(fields.account_id, value, field="account_id")


@NO_DB
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=20))
def test_account_id_property_ascii_text_accepted_only_if_twelve_digits(value: str) -> None:
    if re.fullmatch(r"[0-9]{12}", value.strip()):
        assert fields.account_id(value) == value.strip()
    else:
        refused(fields.account_id, value, field="account_id")


# --- bucket names -----------------------------------------------------------------------------

VALID_BUCKETS = [
    "abc",
    "a1b",
    "123",
    "my-bucket",
    "my.bucket.name",
    "docexamplebucket1",
    "log-delivery-march-2020",
    "my-hosted-content",
    "a" * 63,
    "0" + "-" * 61 + "9",
    "bucket.with.many.dots.in.it",
    "1.2.3",  # three numbers: not an IPv4 address
    "1.2.3.4.5",
    "xn-bucket",  # only the exact prefix xn-- is forbidden
    "sthree",
    "amzn-s3-demo",
    "bucket-s3alias-not-at-end",
    "my-ol-s3",  # the suffix is --ol-s3 (two dashes)
    "mrap.bucket",
    "bucket-x-s3",
    "bucket-table-s3",
]

INVALID_BUCKETS = [
    ("ab", "3 to 63"),
    ("a" * 64, "3 to 63"),
    ("My-Bucket", "lowercase"),
    ("UPPER", "lowercase"),
    ("my_bucket", "lowercase"),
    ("my bucket", "lowercase"),
    ("bucket!", "lowercase"),
    ("-bucket", "starting and ending"),
    ("bucket-", "starting and ending"),
    (".bucket", "starting and ending"),
    ("bucket.", "starting and ending"),
    ("my..bucket", "adjacent periods"),
    ("a..b", "adjacent periods"),
    ("192.168.5.4", "IP address"),
    ("10.0.0.1", "IP address"),
    ("0.0.0.0", "IP address"),
    ("255.255.255.255", "IP address"),
    ("xn--bucket", "xn--"),
    ("sthree-bucket", "sthree-"),
    ("sthree-configurator", "sthree-"),
    ("amzn-s3-demo-bucket", "amzn-s3-demo-"),
    ("bucket-s3alias", "-s3alias"),
    ("bucket--ol-s3", "--ol-s3"),
    ("bucket.mrap", ".mrap"),
    ("bucket--x-s3", "--x-s3"),
    ("bucket--table-s3", "--table-s3"),
    ("bücket", "lowercase"),
]


@pytest.mark.parametrize("name", VALID_BUCKETS)
def test_bucket_name_accepts_valid_names(name: str) -> None:
    assert fields.bucket_name(name) == name


def test_bucket_name_strips_whitespace() -> None:
    assert fields.bucket_name("  my-bucket ") == "my-bucket"


@pytest.mark.parametrize(("name", "reason"), INVALID_BUCKETS)
def test_bucket_name_refuses_invalid_names(name: str, reason: str) -> None:
    err = refused(fields.bucket_name, name, field="bucket")
    assert repr(name) in err.message
    assert reason in err.message


@pytest.mark.parametrize("name", ["192.168.05.4", "01.02.03.04", "999.999.999.999"])
def test_bucket_name_refuses_ip_shaped_names_that_are_not_strict_ipv4(name: str) -> None:
    refused(fields.bucket_name, name, field="bucket")


_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


def _obeys_special_rules(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return False
    return not name.startswith(FORBIDDEN_PREFIXES) and not name.endswith(FORBIDDEN_SUFFIXES)


@NO_DB
@given(st.lists(_LABEL, min_size=1, max_size=6).map(".".join))
def test_bucket_name_property_names_following_the_rules_are_accepted(name: str) -> None:
    assume(3 <= len(name) <= 63)
    assume(not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", name))
    assume(_obeys_special_rules(name))
    assert fields.bucket_name(name) == name


@NO_DB
@given(
    st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True),
    st.sampled_from(string.ascii_uppercase + "_ /\\:@!#é"),
    st.integers(min_value=0, max_value=62),
)
def test_bucket_name_property_any_foreign_character_is_refused(
    name: str, bad: str, where: int
) -> None:
    where = min(max(where, 1), len(name) - 1)  # inside: surrounding whitespace is stripped
    candidate = name[:where] + bad + name[where:]
    refused(fields.bucket_name, candidate, field="bucket")


@NO_DB
@given(st.from_regex(r"[a-z0-9]{64,80}", fullmatch=True))
def test_bucket_name_property_too_long_is_refused(name: str) -> None:
    refused(fields.bucket_name, name, field="bucket")


# --- region --------------------------------------------------------------------------------


def test_region_list_matches_aws_facts() -> None:
    assert len(COMMERCIAL_REGIONS) == 34
    assert set(fields.COMMERCIAL_REGIONS) == set(COMMERCIAL_REGIONS)


@pytest.mark.parametrize("region", COMMERCIAL_REGIONS)
def test_region_accepts_every_commercial_region(region: str) -> None:
    assert fields.region(region) == region


@pytest.mark.parametrize(
    "region",
    [
        "us-gov-west-1",
        "us-gov-east-1",
        "cn-north-1",
        "cn-northwest-1",
        "US-EAST-1",
        "Us-East-1",
        "us-east",
        "us-east-3",
        "eu-west-9",
        "us_east_1",
        "global",
    ],
)
def test_region_refuses_non_commercial_or_malformed(region: str) -> None:
    err = refused(fields.region, region, field="region")
    assert repr(region) in err.message


# --- base path -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (None, ""),
        ("", ""),
        ("   ", ""),
        ("exports", "exports"),
        ("exports/", "exports"),
        ("exports//", "exports"),
        ("exports/billing", "exports/billing"),
        ("exports/billing/", "exports/billing"),
        (" exports/billing ", "exports/billing"),
        ("a/b/c/d", "a/b/c/d"),
        ("Exports-2025/v1.0", "Exports-2025/v1.0"),
        ("folder_with_underscore", "folder_with_underscore"),
        ("k=v/(x)/it's/!", "k=v/(x)/it's/!"),
        ("x" * 512, "x" * 512),
    ],
)
def test_base_path_normalises(raw: str | None, clean: str) -> None:
    assert fields.base_path(raw) == clean


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("/exports", "/exports"),
        ("/", "/"),
        ("..", ".."),
        ("exports/..", "exports/.."),
        ("a/../b", "a/../b"),
        ("../outside", "../outside"),
        ("a..b", "a..b"),
        ("a//b", "a//b"),
        ("_hidden", "_hidden"),
        ("exports/_hidden", "_hidden"),
        ("_byob_connection_test", "_byob_connection_test"),
        (".hidden", ".hidden"),
        ("exports/.git", ".git"),
        ("with space", "with space"),
        ("tab\there", "tab\there"),
        ("a/b?c", "b?c"),
        ("pct%20", "pct%20"),
        ("back\\slash", "back\\slash"),
        ("émoji", "émoji"),
        ("x" * 513, "base path"),
        ("*", "*"),  # a wildcard in the policy's resource ARN
        ("exports/*", "*"),
        ("a?b", "?"),
        ("${aws:username}", "$"),
        ("{x}", "{"),
    ],
)
def test_base_path_refusals_name_the_value(raw: str, needle: str) -> None:
    err = refused(fields.base_path, raw, field="base_path")
    assert needle in err.message or repr(needle) in err.message


# --- role ARN ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:iam::{ACCOUNT}:role/transfer-role",
        f"arn:aws:iam::{ACCOUNT}:role/service-role/transfer-role",
        f"arn:aws:iam::{ACCOUNT}:role/a/b/c/role+=,.@_-name",
        f"arn:aws:iam::{ACCOUNT}:role/" + "r" * 64,
    ],
)
def test_role_arn_accepts_roles_in_the_account(arn: str) -> None:
    assert fields.role_arn(arn, expected_account_id=ACCOUNT) == arn


def test_role_arn_in_another_account_is_refused_naming_both_accounts() -> None:
    arn = "arn:aws:iam::999999999999:role/transfer-role"
    err = refused(fields.role_arn, arn, expected_account_id=ACCOUNT, field="role_arn")
    assert "999999999999" in err.message
    assert ACCOUNT in err.message
    assert repr(arn) in err.message


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "transfer-role",
        f"arn:aws:iam::{ACCOUNT}:user/someone",
        f"arn:aws:iam::{ACCOUNT}:role/",
        f"arn:aws:iam::{ACCOUNT}:role/" + "r" * 65,
        f"arn:aws:iam::{ACCOUNT}:role/has space",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:s3:::bucket",
        f"arn:aws-cn:iam::{ACCOUNT}:role/x",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/x/session",
    ],
)
def test_role_arn_refuses_non_role_arns(arn: str) -> None:
    err = refused(fields.role_arn, arn, expected_account_id=ACCOUNT, field="role_arn")
    assert repr(arn) in err.message


# --- other fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acme", "Acme-S3.prod_1", "a", "9lives", "x" * 63])
def test_connection_name_accepts(name: str) -> None:
    assert fields.connection_name(name) == name


@pytest.mark.parametrize("name", ["-acme", "_acme", ".acme", "has space", "x" * 64, "a/b"])
def test_connection_name_refuses(name: str) -> None:
    err = refused(fields.connection_name, name, field="name")
    assert repr(name.strip()) in err.message


@pytest.mark.parametrize("value", ["", "   ", "t" * 257])
def test_tenant_refuses_empty_or_huge(value: str) -> None:
    refused(fields.tenant, value, field="tenant")


def test_tenant_is_kept_verbatim_but_spaces_around_it_are_refused() -> None:
    assert fields.tenant("Tenant 42") == "Tenant 42"  # case and inner spaces kept
    for padded in (" Tenant 42 ", "acme ", "  acme"):
        err = refused(fields.tenant, padded, field="tenant")
        assert "spaces around it" in err.message and repr(padded.strip()) in err.message


def test_access_key_id_rules() -> None:
    assert fields.access_key_id("AKIAIOSFODNN7EXAMPLE") == "AKIAIOSFODNN7EXAMPLE"
    for bad in ("akiaiosfodnn7example", "AKIA", "AKIA IOSFODNN7EXAMPLE"):
        refused(fields.access_key_id, bad, field="access_key_id")


def test_secret_access_key_is_never_echoed() -> None:
    secret = "short-secret"
    err = refused(fields.secret_access_key, secret, field="secret_access_key")
    assert secret not in err.message
    good = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert fields.secret_access_key(f" {good} ") == good


@pytest.mark.parametrize("raw", ["*", "exports/*", "a?b", "${aws:username}", "x{y}"])
def test_policy_metacharacters_never_reach_a_policy(raw: str) -> None:
    err = refused(fields.base_path, raw, field="base_path")
    assert "wildcards or variables" in err.message


# --- required fields -------------------------------------------------------------------------


REQUIRED = [
    (fields.connection_name, "name"),
    (fields.tenant, "tenant"),
    (fields.account_id, "account_id"),
    (fields.bucket_name, "bucket"),
    (fields.region, "region"),
    (fields.access_key_id, "access_key_id"),
    (fields.secret_access_key, "secret_access_key"),
]


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
@pytest.mark.parametrize(("check", "field"), REQUIRED, ids=[f for _, f in REQUIRED])
def test_an_empty_required_field_says_it_is_required_and_what_to_put(
    check: Any, field: str, value: str
) -> None:
    err = refused(check, value, field=field)
    assert err.message == f"{field} is required: {fields.WHAT_TO_PUT[field]}"
    assert "''" not in err.message  # not the rule for a bad value, quoting the empty one


def test_a_missing_region_names_the_field_and_an_example_not_every_region() -> None:
    err = refused(fields.region, "", field="region")
    assert err.message == "region is required: the AWS region of the bucket, e.g. eu-west-1"


def test_what_to_put_has_an_example_or_the_choices_for_every_required_field() -> None:
    for field, what in fields.WHAT_TO_PUT.items():
        assert "e.g." in what or "like" in what or ":" in what or "shown" in what, field
        assert fields.missing(field).message == f"{field} is required: {what}"
        assert fields.missing(field).field == field
    assert fields.missing("connection").message == "connection is required"
