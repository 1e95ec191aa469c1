"""IAM material a recipient pastes into their AWS account: role name, external ID, trust and
permissions policies. Pure functions; the output is exactly what the recipient sees."""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from byob.domain.layout import join

_ALPHANUMERIC = string.ascii_letters + string.digits
EXTERNAL_ID_LENGTH = 40
_ROLE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9+=,.@_-]")

PolicyDocument = dict[str, Any]


def new_external_id() -> str:
    """A random, unguessable external ID: 40 characters of [A-Za-z0-9] (~238 bits)."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(EXTERNAL_ID_LENGTH))


def role_name(connection_name: str, suffix: str) -> str:
    """A valid IAM role name (<= 64 of [\\w+=,.@-]) that says byob and the connection."""
    safe = _ROLE_NAME_UNSAFE.sub("-", connection_name).strip("-") or "connection"
    head = "byob-"
    tail = f"-{suffix}"
    return head + safe[: 64 - len(head) - len(tail)] + tail


def role_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def trust_policy(service_principal_arn: str, external_id: str) -> PolicyDocument:
    """Lets only byob's own principal assume the role, and only with this connection's
    external ID (the confused-deputy guard AWS recommends)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": service_principal_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def s3_object_arn(bucket: str, prefix: str) -> str:
    return f"arn:aws:s3:::{join(bucket, prefix)}/*"


def s3_permissions_policy(bucket: str, base_path: str) -> PolicyDocument:
    """Least privilege for S3 export: write objects under the base path, delete (only needed
    for the connection-test object) and abort multipart uploads. No read, no list."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ByobWriteUnderBasePath",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": s3_object_arn(bucket, base_path),
            }
        ],
    }


def import_permissions_policy(bucket: str, base_path: str) -> PolicyDocument:
    """Least privilege for S3 import: list keys under the base path and read those objects.
    Nothing else: no write, no delete, no listing outside the base path.

    The prefix condition follows AWS's home-folder example: the folder itself (``base/``) and
    everything under it (``base/*``). Not ``base`` without the slash: that prefix would also
    list a sibling folder such as ``base2/``. Without a base path the whole bucket is listed,
    so there is no condition."""
    base = join(base_path)
    listing: PolicyDocument = {
        "Sid": "ByobListBasePath",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    if base:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{base}/", f"{base}/*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            listing,
            {
                "Sid": "ByobReadUnderBasePath",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": s3_object_arn(bucket, base),
            },
        ],
    }


def athena_permissions_policy(
    *, account_id: str, workgroup: str, bucket: str, schema: str
) -> PolicyDocument:
    """The seed's Athena policy, filled in, plus s3:AbortMultipartUpload."""
    return {
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
                "Resource": [f"arn:aws:athena:*:{account_id}:workgroup/{workgroup}"],
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
                    f"arn:aws:glue:*:{account_id}:catalog",
                    f"arn:aws:glue:*:{account_id}:database/{schema}",
                    f"arn:aws:glue:*:{account_id}:database/default",
                    f"arn:aws:glue:*:{account_id}:table/{schema}/*",
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
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


@dataclass(frozen=True, kw_only=True)
class StatementChange:
    """What one statement of a policy lost and gained, per element (Action, Resource, …)."""

    sid: str  # its Sid, or its place ("statement 2") when it has none
    removed: dict[str, tuple[str, ...]]
    added: dict[str, tuple[str, ...]]

    def lines(self) -> list[str]:
        """``- value`` / ``+ value`` lines under each changed element, as a diff reads."""
        out = []
        for element in dict.fromkeys([*self.removed, *self.added]):
            out.append(f"{element}:")
            out += [f"- {v}" for v in self.removed.get(element, ())]
            out += [f"+ {v}" for v in self.added.get(element, ())]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "removed": {k: list(v) for k, v in self.removed.items()},
            "added": {k: list(v) for k, v in self.added.items()},
        }


def diff_statements(
    before: PolicyDocument | None, after: PolicyDocument | None
) -> list[StatementChange]:
    """The statements that differ between two policies, matched by Sid (else by place); an
    element's values are compared as sets, so reordering is no change. Empty: the same."""
    old, new = _statements(before), _statements(after)
    changes = []
    for sid in dict.fromkeys([*old, *new]):
        a, b = old.get(sid, {}), new.get(sid, {})
        removed: dict[str, tuple[str, ...]] = {}
        added: dict[str, tuple[str, ...]] = {}
        for element in dict.fromkeys([*a, *b]):
            was, now = a.get(element, ()), b.get(element, ())
            if gone := tuple(v for v in was if v not in now):
                removed[element] = gone
            if new_values := tuple(v for v in now if v not in was):
                added[element] = new_values
        if removed or added:
            changes.append(StatementChange(sid=sid, removed=removed, added=added))
    return changes


def _statements(policy: PolicyDocument | None) -> dict[str, dict[str, tuple[str, ...]]]:
    statements = (policy or {}).get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return {
        str(s.get("Sid") or f"statement {n}"): {
            element: _values(value) for element, value in s.items() if element != "Sid"
        }
        for n, s in enumerate(statements, start=1)
    }


def _values(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in items)
