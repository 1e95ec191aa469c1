"""A role connection's IAM role as code the recipient runs instead of clicking through IAM: an
AWS CloudFormation template (and the console's quick-create link for it), a Terraform snippet
and AWS CLI commands. All three are pure functions of the role name and the two documents
`policies` generates, embedded unchanged, so each creates exactly the role the wizard shows."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from urllib.parse import urlencode

from byob.domain.policies import PolicyDocument

# The inline policy's name, the same in all three forms: a recipient who switches from one to
# another (or re-runs the CLI commands) updates the policy instead of adding a second one.
PERMISSIONS_POLICY_NAME = "byob-permissions"
TEMPLATE_DESCRIPTION = (
    "The IAM role byob assumes for this connection: its name, trust policy (with this "
    "connection's external ID) and permissions policy exactly as byob generated them."
)
_ROLE_RESOURCE = "ByobRole"
_STACK_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
_HCL_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_STACK_NAME_MAX = 128
# Where BYOB_TEMPLATE_BUCKET's templates go, under its prefix: one object per connection.
TEMPLATE_FOLDER = "byob-role-templates"
# A SigV4 presigned URL lives at most 7 days (and no longer than the credentials that signed it).
TEMPLATE_LINK_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, kw_only=True)
class Role:
    """The role to create: what `policies` generated for the connection."""

    name: str
    trust_policy: PolicyDocument
    permissions_policy: PolicyDocument
    path: str = "/"  # only a role the recipient named by an ARN with a path has another


def role_path(role_arn: str) -> str:
    """The IAM path in a role ARN ("/" unless the recipient named a role with one)."""
    folder = role_arn.split(":role/", 1)[-1].rpartition("/")[0]
    return f"/{folder}/" if folder else "/"


def cloudformation_template(role: Role) -> dict[str, object]:
    """A template with one AWS::IAM::Role: the generated name, the trust policy as its
    AssumeRolePolicyDocument and the permissions policy inline; the role's ARN as output."""
    properties: dict[str, object] = {
        "RoleName": role.name,
        "AssumeRolePolicyDocument": role.trust_policy,
        "Policies": [
            {"PolicyName": PERMISSIONS_POLICY_NAME, "PolicyDocument": role.permissions_policy}
        ],
    }
    if role.path != "/":
        properties["Path"] = role.path
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": TEMPLATE_DESCRIPTION,
        "Resources": {_ROLE_RESOURCE: {"Type": "AWS::IAM::Role", "Properties": properties}},
        "Outputs": {
            "RoleArn": {
                "Description": "The role byob assumes",
                "Value": {"Fn::GetAtt": [_ROLE_RESOURCE, "Arn"]},
            }
        },
    }


def template_text(template: dict[str, object]) -> str:
    """The template as the file a recipient downloads (JSON is valid CloudFormation)."""
    return json.dumps(template, indent=2) + "\n"


def stack_name(role_name: str) -> str:
    """A stack name (a letter, then up to 127 of [A-Za-z0-9-]) that says which role it holds."""
    safe = _STACK_UNSAFE.sub("-", role_name)
    if not safe[:1].isalpha():
        safe = f"byob-{safe}"
    return safe[:_STACK_NAME_MAX]


def quick_create_url(*, region: str, template_url: str, stack_name: str) -> str:
    """The console's "Launch stack" link: the create-stack review page in the connection's
    region, with the template and stack name filled in."""
    query = urlencode({"templateURL": template_url, "stackName": stack_name})
    return (
        f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}"
        f"#/stacks/create/review?{query}"
    )


def template_location(template_bucket: str, connection_id: str, token: str) -> tuple[str, str]:
    """The bucket and key of a connection's uploaded template, for BYOB_TEMPLATE_BUCKET given
    as "bucket" or "bucket/prefix"."""
    bucket, _, prefix = template_bucket.strip("/").partition("/")
    key = f"{TEMPLATE_FOLDER}/{connection_id}/{token}.json"
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/{key}" if prefix else key


def template_token(connection_id: str, external_id: str) -> str:
    """The unguessable part of the template's public address: the console fetches it without
    any session, so the address itself is the only key to it."""
    digest = hashlib.sha256(f"byob-cloudformation:{connection_id}:{external_id}".encode())
    return digest.hexdigest()[:32]


def terraform(role: Role) -> str:
    """An aws_iam_role and its aws_iam_role_policy, the documents passed to jsonencode
    as JSON (which is also HCL object syntax), and the role's ARN as an output."""
    label = _HCL_LABEL_UNSAFE.sub("_", role.name)
    if not (label[:1].isalpha() or label[:1] == "_"):
        label = f"byob_{label}"
    name = json.dumps(role.name)
    return (
        f'resource "aws_iam_role" "{label}" {{\n'
        f"  name               = {name}\n"
        + (f"  path               = {json.dumps(role.path)}\n" if role.path != "/" else "")
        + f"  assume_role_policy = jsonencode({_hcl_json(role.trust_policy)})\n"
        "}\n"
        "\n"
        f'resource "aws_iam_role_policy" "{label}" {{\n'
        f'  name   = "{PERMISSIONS_POLICY_NAME}"\n'
        f"  role   = aws_iam_role.{label}.id\n"
        f"  policy = jsonencode({_hcl_json(role.permissions_policy)})\n"
        "}\n"
        "\n"
        f'output "{label}_arn" {{\n'
        f"  value = aws_iam_role.{label}.arn\n"
        "}\n"
    )


def _hcl_json(document: PolicyDocument) -> str:
    # JSON is valid HCL, except that "${" and "%{" start templates inside HCL strings.
    text = json.dumps(document, indent=2).replace("${", "$${").replace("%{", "%%{")
    return text.replace("\n", "\n  ")


def aws_cli(role: Role) -> str:
    """Two commands, one a line and every argument shell-quoted: create the role with the
    trust policy, then put the permissions policy on it (re-running the second updates it)."""
    create = [
        "aws",
        "iam",
        "create-role",
        "--role-name",
        role.name,
        "--assume-role-policy-document",
        _compact(role.trust_policy),
        *(("--path", role.path) if role.path != "/" else ()),
    ]
    put = [
        "aws",
        "iam",
        "put-role-policy",
        "--role-name",
        role.name,
        "--policy-name",
        PERMISSIONS_POLICY_NAME,
        "--policy-document",
        _compact(role.permissions_policy),
    ]
    return "\n".join(shlex.join(command) for command in (create, put)) + "\n"


def _compact(document: PolicyDocument) -> str:
    return json.dumps(document, separators=(",", ":"))
