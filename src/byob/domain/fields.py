"""Field rules for connections, as AWS and the product contract state them.

Every check returns the cleaned value or raises ``InvalidFieldError`` naming the field and
saying what a valid value looks like.
"""

from __future__ import annotations

import re

from byob.errors import InvalidFieldError

# AWS's commercial regions (botocore's endpoint data, partition "aws").
COMMERCIAL_REGIONS: tuple[str, ...] = (
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
)

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP_SHAPED = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_CONNECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# S3's safe key characters, but for '*': the base path becomes the Resource of the
# permissions policy, where '*' and '?' are wildcards and '${…}' a policy variable.
_BASE_PATH_SEGMENT = re.compile(r"[A-Za-z0-9!_.'()=-]+")
_POLICY_METACHARACTERS = "*?${}"
_ROLE_ARN = re.compile(
    r"arn:aws:iam::([0-9]{12}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})", re.ASCII
)
_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")

# What to put in each field a connection cannot do without, for the message that says it is
# missing: one wording for the CLI, the API and the wizard, instead of the rule for a bad value
# (a missing region used to be "region '' is not an AWS commercial region", then 34 regions).
WHAT_TO_PUT = {
    "name": "a name for this connection, e.g. acme-s3 (letters, digits, '_', '.' or '-')",
    "tenant": "the tenant's value in the source's tenant column, e.g. acme",
    "type": "the kind of destination: s3, athena or local",
    "account_id": "the 12-digit ID of the AWS account that owns the bucket, e.g. 123456789012",
    "bucket": "the name of an existing S3 bucket in that account, e.g. acme-data",
    "region": "the AWS region of the bucket, e.g. eu-west-1",
    "path": "the directory a local connection writes into, e.g. /srv/exports",
    "access_key_id": "the IAM user's access key ID, like AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "the secret shown when the access key was created",
    "workgroup": "the Athena workgroup to query with, e.g. primary",
    "schema": "the Glue database and S3 folder for the data, e.g. acme_billing",
    "database": "the S3 folder for Athena query results, e.g. acme_queries",
}


def missing(field: str) -> InvalidFieldError:
    """The error for a required field left empty (or a required key left out): it names the
    field and says what to put in it."""
    what = WHAT_TO_PUT.get(field)
    return InvalidFieldError(f"{field} is required" + (f": {what}" if what else ""), field=field)


def _required(value: str | None, field: str) -> str:
    """The value, unless it is empty or only spaces."""
    if value is None or not value.strip():
        raise missing(field)
    return value


def account_id(value: str) -> str:
    """An AWS account ID: exactly 12 digits."""
    value = _required(value, "account_id").strip()
    if not _ACCOUNT_ID.fullmatch(value):
        raise InvalidFieldError(
            f"AWS account ID must be exactly 12 digits (got {value!r}); find it in the "
            "AWS console under your account name.",
            field="account_id",
        )
    return value


def bucket_name(value: str) -> str:
    """An S3 bucket name under AWS's general-purpose bucket naming rules."""
    value = _required(value, "bucket").strip()
    problem = _bucket_problem(value)
    if problem:
        raise InvalidFieldError(
            f"bucket name {value!r} is not a valid S3 bucket name: {problem}", field="bucket"
        )
    return value


def _bucket_problem(name: str) -> str | None:
    if not 3 <= len(name) <= 63:
        return "it must be 3 to 63 characters long"
    if not _BUCKET_CHARS.fullmatch(name):
        return (
            "use only lowercase letters, digits, '.' and '-', starting and ending with a "
            "letter or digit"
        )
    if ".." in name:
        return "it must not contain two adjacent periods"
    if _IP_SHAPED.fullmatch(name):
        return "it must not be formatted as an IP address"
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"it must not start with {prefix!r}"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"it must not end with {suffix!r}"
    return None


def region(value: str) -> str:
    """One of AWS's commercial regions."""
    value = _required(value, "region").strip()
    if value not in COMMERCIAL_REGIONS:
        raise InvalidFieldError(
            f"region {value!r} is not an AWS commercial region; use the region your bucket "
            f"is in, e.g. us-east-1 or eu-west-1 (one of: {', '.join(COMMERCIAL_REGIONS)})",
            field="region",
        )
    return value


def base_path(value: str | None) -> str:
    """An optional folder under the bucket: no leading '/', no '..', normalised without
    a trailing '/'."""
    if value is None:
        return ""
    value = value.strip()
    if value.startswith("/"):
        raise InvalidFieldError(
            f"base path {value!r} must not start with '/'; write it relative to the bucket, "
            "e.g. exports/billing",
            field="base_path",
        )
    if ".." in value:
        raise InvalidFieldError(f"base path {value!r} must not contain '..'", field="base_path")
    value = value.rstrip("/")
    if not value:
        return ""
    for segment in value.split("/"):
        if not segment:
            raise InvalidFieldError(
                f"base path {value!r} must not contain empty folders ('//')", field="base_path"
            )
        special = sorted({ch for ch in segment if ch in _POLICY_METACHARACTERS})
        if special:
            raise InvalidFieldError(
                f"base path folder {segment!r} must not contain {' '.join(special)}: in the "
                "permissions policy's resource ARN they are wildcards or variables, which would "
                "grant more than this folder",
                field="base_path",
            )
        if not _BASE_PATH_SEGMENT.fullmatch(segment):
            raise InvalidFieldError(
                f"base path folder {segment!r} may only use letters, digits and ! _ . ' ( ) = -"
                " (characters S3 keys and IAM resource ARNs treat literally)",
                field="base_path",
            )
        if segment.startswith(("_", ".")):
            raise InvalidFieldError(
                f"base path folder {segment!r} must not start with '_' or '.': query engines "
                "hide such folders",
                field="base_path",
            )
    if len(value) > 512:
        raise InvalidFieldError("base path must be at most 512 characters", field="base_path")
    return value


def connection_name(value: str) -> str:
    """A connection name: 1-63 letters, digits, '_', '.', '-', starting with a letter or digit."""
    value = _required(value, "name").strip()
    if re.fullmatch(r"[0-9a-f]{32}", value):
        raise InvalidFieldError(
            "a connection name must not look like a connection ID (32 hex digits)", field="name"
        )
    if not _CONNECTION_NAME.fullmatch(value):
        raise InvalidFieldError(
            f"connection name {value!r} must be 1-63 characters of letters, digits, '_', '.' "
            "or '-', starting with a letter or digit",
            field="name",
        )
    return value


def tenant(value: str) -> str:
    """A tenant identifier as stored in the source's tenant column: any non-empty text."""
    _required(value, "tenant")
    if len(value) > 256:
        raise InvalidFieldError("tenant must be at most 256 characters", field="tenant")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidFieldError("tenant must not contain control characters", field="tenant")
    if value != value.strip():
        # A tenant value with spaces around it is almost always a typo, and one that matches
        # no row: every transfer would succeed with nothing in it, forever.
        raise InvalidFieldError(
            f"tenant {value!r} has spaces around it; give the tenant column's value exactly "
            f"(did you mean {value.strip()!r}?)",
            field="tenant",
        )
    return value


def role_arn(value: str, *, expected_account_id: str) -> str:
    """An existing IAM role ARN, refused unless it lives in the connection's account."""
    value = value.strip()
    match = _ROLE_ARN.fullmatch(value)
    if not match:
        raise InvalidFieldError(
            f"role ARN {value!r} is not an IAM role ARN; it looks like "
            "arn:aws:iam::123456789012:role/transfer-role",
            field="role_arn",
        )
    if match.group(1) != expected_account_id:
        raise InvalidFieldError(
            f"role ARN {value!r} belongs to account {match.group(1)}, but the connection's "
            f"AWS account ID is {expected_account_id}; use a role in that account",
            field="role_arn",
        )
    return value


def access_key_id(value: str) -> str:
    """An AWS access key ID (e.g. AKIA...)."""
    value = _required(value, "access_key_id").strip()
    if not _ACCESS_KEY_ID.fullmatch(value):
        raise InvalidFieldError(
            "access key ID must be 16-128 uppercase letters and digits, like AKIAIOSFODNN7EXAMPLE",
            field="access_key_id",
        )
    return value


def secret_access_key(value: str) -> str:
    """An AWS secret access key; never echoed back in messages."""
    _required(value, "secret_access_key")
    if len(value.strip()) < 16 or len(value) > 256:
        raise InvalidFieldError(
            "secret access key must be the 40-character secret shown when the access key was "
            "created",
            field="secret_access_key",
        )
    return value.strip()
