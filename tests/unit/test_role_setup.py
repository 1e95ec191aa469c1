"""The role as code: the CloudFormation template, Terraform snippet and AWS CLI commands embed
exactly the role name and documents `policies` generates, read back as a machine would."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.domain import policies, role_setup
from byob.errors import ConfigError
from byob.settings import load_settings

SERVICE = "arn:aws:iam::111122223333:role/byob-service"
EXTERNAL_ID = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"
ROLE = role_setup.Role(
    name="byob-acme-s3-1a2b3c",
    trust_policy=policies.trust_policy(SERVICE, EXTERNAL_ID),
    permissions_policy=policies.athena_permissions_policy(
        account_id="210987654321", workgroup="primary", bucket="acme-data", schema="acme"
    ),
)
# What the AWS CLI options become as boto3 IAM parameters.
CLI_PARAMETERS = {
    "--role-name": "RoleName",
    "--assume-role-policy-document": "AssumeRolePolicyDocument",
    "--policy-name": "PolicyName",
    "--policy-document": "PolicyDocument",
    "--path": "Path",
}


def terraform_documents(snippet: str) -> list[Any]:
    """The documents inside a snippet's jsonencode(...) calls, in order, as Terraform reads
    them (JSON object syntax is HCL; "$${" is HCL's escape of a literal "${")."""
    found = []
    decoder = json.JSONDecoder()
    rest = snippet
    while (start := rest.find("jsonencode(")) >= 0:
        rest = rest[start + len("jsonencode(") :]
        document, _ = decoder.raw_decode(rest.replace("$${", "${").replace("%%{", "%{"))
        found.append(document)
    return found


def cli_calls(commands: str) -> list[tuple[str, dict[str, str]]]:
    """Each command line as the shell would split it: the boto3 IAM method and its keyword
    arguments, the option values exactly as the shell passes them."""
    calls = []
    for line in commands.splitlines():
        argv = shlex.split(line)
        assert argv[:2] == ["aws", "iam"], line
        options = argv[3:]
        assert len(options) % 2 == 0, argv
        pairs = dict(zip(options[::2], options[1::2], strict=True))
        calls.append((argv[2].replace("-", "_"), {CLI_PARAMETERS[k]: v for k, v in pairs.items()}))
    return calls


def test_the_template_creates_the_role_with_exactly_the_documents() -> None:
    template = role_setup.cloudformation_template(ROLE)
    [(logical, resource)] = template["Resources"].items()
    assert resource == {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": "byob-acme-s3-1a2b3c",
            "AssumeRolePolicyDocument": ROLE.trust_policy,
            "Policies": [
                {"PolicyName": "byob-permissions", "PolicyDocument": ROLE.permissions_policy}
            ],
        },
    }
    assert template["Outputs"] == {  # the role's ARN, to paste back if asked
        "RoleArn": {
            "Description": "The role byob assumes",
            "Value": {"Fn::GetAtt": [logical, "Arn"]},
        }
    }
    assert json.loads(role_setup.template_text(template)) == template


def test_the_terraform_snippet_embeds_the_same_documents() -> None:
    snippet = role_setup.terraform(ROLE)
    assert terraform_documents(snippet) == [ROLE.trust_policy, ROLE.permissions_policy]
    assert 'resource "aws_iam_role" "byob-acme-s3-1a2b3c" {' in snippet
    assert '  name               = "byob-acme-s3-1a2b3c"\n' in snippet
    assert "  role   = aws_iam_role.byob-acme-s3-1a2b3c.id\n" in snippet
    assert '  name   = "byob-permissions"\n' in snippet


def test_terraform_escapes_what_hcl_would_interpolate() -> None:
    odd = {"Version": "2012-10-17", "Statement": [{"Resource": "arn:aws:s3:::b/${x}/%{y}/*"}]}
    snippet = role_setup.terraform(
        role_setup.Role(name="r", trust_policy=odd, permissions_policy=odd)
    )
    assert "$${x}" in snippet and "%%{y}" in snippet
    assert terraform_documents(snippet) == [odd, odd]


def test_the_cli_commands_carry_the_same_documents() -> None:
    [(create, created), (put, granted)] = cli_calls(role_setup.aws_cli(ROLE))
    assert create == "create_role" and put == "put_role_policy"
    assert created.keys() == {"RoleName", "AssumeRolePolicyDocument"}
    assert created["RoleName"] == granted["RoleName"] == ROLE.name
    assert json.loads(created["AssumeRolePolicyDocument"]) == ROLE.trust_policy
    assert granted["PolicyName"] == "byob-permissions"
    assert json.loads(granted["PolicyDocument"]) == ROLE.permissions_policy


@given(st.text(min_size=1, max_size=40))
def test_the_cli_commands_survive_any_text_in_a_document(text: str) -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Sid": text, "Resource": "'\"$(x)`;"}]}
    role = role_setup.Role(name="r", trust_policy=document, permissions_policy=document)
    [(_, created), (_, granted)] = cli_calls(role_setup.aws_cli(role))
    assert json.loads(created["AssumeRolePolicyDocument"]) == document
    assert json.loads(granted["PolicyDocument"]) == document


def test_a_role_with_a_path_keeps_it_in_all_three() -> None:
    path = role_setup.role_path("arn:aws:iam::210987654321:role/data/byob/transfer")
    assert path == "/data/byob/"
    assert role_setup.role_path("arn:aws:iam::210987654321:role/transfer") == "/"
    role = role_setup.Role(
        name="transfer", trust_policy=ROLE.trust_policy, permissions_policy={}, path=path
    )
    properties = role_setup.cloudformation_template(role)["Resources"]["ByobRole"]["Properties"]
    assert properties["Path"] == "/data/byob/"
    assert '  path               = "/data/byob/"\n' in role_setup.terraform(role)
    assert cli_calls(role_setup.aws_cli(role))[0][1]["Path"] == "/data/byob/"
    assert (
        "Path"
        not in role_setup.cloudformation_template(ROLE)["Resources"]["ByobRole"]["Properties"]
    )


@pytest.mark.parametrize(
    ("role_name", "stack"),
    [
        ("byob-acme-s3-1a2b3c", "byob-acme-s3-1a2b3c"),
        ("byob-a.b_c@d+e=f,g-1a2b3c", "byob-a-b-c-d-e-f-g-1a2b3c"),
        ("7-eleven", "byob-7-eleven"),
    ],
)
def test_stack_names_are_valid(role_name: str, stack: str) -> None:
    assert role_setup.stack_name(role_name) == stack


def test_the_launch_link_opens_quick_create_in_the_connection_region() -> None:
    template_url = "https://byob.example.com/connect/cloudformation/abc/def.json"
    url = role_setup.quick_create_url(
        region="eu-west-1", template_url=template_url, stack_name="byob-acme"
    )
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "eu-west-1.console.aws.amazon.com"
    assert parts.path == "/cloudformation/home" and parts.query == "region=eu-west-1"
    route, _, query = parts.fragment.partition("?")
    assert route == "/stacks/create/review"
    assert parse_qs(query) == {"templateURL": [template_url], "stackName": ["byob-acme"]}


def test_the_template_token_depends_on_the_connection_and_its_external_id() -> None:
    token = role_setup.template_token("c" * 32, EXTERNAL_ID)
    assert len(token) == 32 and token == role_setup.template_token("c" * 32, EXTERNAL_ID)
    assert token != role_setup.template_token("d" * 32, EXTERNAL_ID)
    assert token != role_setup.template_token("c" * 32, EXTERNAL_ID[::-1])


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("vendor-cfn", "byob-role-templates/c1/t.json"),
        ("vendor-cfn/byob", "byob/byob-role-templates/c1/t.json"),
        ("vendor-cfn/a/b/", "a/b/byob-role-templates/c1/t.json"),
    ],
)
def test_an_uploaded_template_goes_under_the_buckets_prefix(setting: str, key: str) -> None:
    assert role_setup.template_location(setting, "c1", "t") == ("vendor-cfn", key)


@pytest.mark.parametrize("setting", ["s3://vendor-cfn", "Vendor_CFN", "a", "arn:aws:s3:::b"])
def test_the_template_bucket_setting_must_name_a_bucket(setting: str) -> None:
    with pytest.raises(ConfigError, match="BYOB_TEMPLATE_BUCKET") as raised:
        load_settings(template_bucket=setting)
    assert raised.value.field == "BYOB_TEMPLATE_BUCKET"


@pytest.mark.parametrize(
    ("bucket", "host", "path"),
    [
        ("vendor-cfn", "vendor-cfn.s3.ap-southeast-5.amazonaws.com", "/k/t.json"),
        # A virtual host's TLS certificate does not cover names with dots: path style.
        ("vendor.cfn", "s3.ap-southeast-5.amazonaws.com", "/vendor.cfn/k/t.json"),
    ],
)
def test_a_presigned_template_url_is_sigv4_on_the_buckets_regional_host(
    bucket: str, host: str, path: str
) -> None:
    # Presigning needs no request, only credentials: these are never sent anywhere.
    session = boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region_name="us-east-1",
    )
    client = AwsSessions(AwsConfig(), session).presigning_s3_client("ap-southeast-5")
    url = client.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "k/t.json"},
        ExpiresIn=role_setup.TEMPLATE_LINK_SECONDS,
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", host, path)
    query = {k: v for k, [v] in parse_qs(parts.query).items()}
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].endswith("/ap-southeast-5/s3/aws4_request")
    assert query["X-Amz-Expires"] == "604800"  # 7 days, the most SigV4 allows
    # ... and the Launch stack link carries it whole, its own query escaped.
    launch = role_setup.quick_create_url(region="eu-west-1", template_url=url, stack_name="s")
    fragment = urlsplit(launch).fragment.split("?", 1)[1]
    assert parse_qs(fragment)["templateURL"] == [url]
