"""`byob connections policy NAME --format …`: the role as code, alone on stdout so it can be
redirected to a file, made from the very documents `--json` gives."""

from __future__ import annotations

import json

import pytest

from tests.acceptance.test_cli import byob, env  # noqa: F401 - env is a fixture
from tests.support import CUSTOMER
from tests.unit.test_role_setup import cli_calls, terraform_documents

pytestmark = pytest.mark.acceptance


def test_the_policy_command_prints_the_role_as_cloudformation_terraform_or_cli(
    env: dict[str, str],
) -> None:
    env = env | {"BYOB_PUBLIC_URL": "https://byob.example.com"}
    created = byob(
        env,
        "connections",
        "create",
        "--name",
        "acme-s3",
        "--tenant",
        "acme",
        "--account-id",
        CUSTOMER,
        "--bucket",
        "acme-data",
        "--region",
        "eu-west-1",
        "--base-path",
        "exports",
    )
    assert created.returncode == 0, created.stderr
    material = json.loads(byob(env, "connections", "policy", "acme-s3", "--json").stdout)
    trust, permissions = material["trust_policy"], material["permissions_policy"]

    template = byob(env, "connections", "policy", "acme-s3", "--format", "cloudformation")
    assert template.returncode == 0, template.stderr
    assert json.loads(template.stdout) == material["role_setup"]["cloudformation"]["template"]
    properties = json.loads(template.stdout)["Resources"]["ByobRole"]["Properties"]
    assert properties["RoleName"] == material["role_name"]
    assert properties["AssumeRolePolicyDocument"] == trust
    assert properties["Policies"] == [
        {"PolicyName": "byob-permissions", "PolicyDocument": permissions}
    ]
    launch = "Launch stack: https://eu-west-1.console.aws.amazon.com/cloudformation/home?"
    assert launch in template.stderr

    terraform = byob(env, "connections", "policy", "acme-s3", "--format", "terraform")
    assert terraform.returncode == 0, terraform.stderr
    assert terraform_documents(terraform.stdout) == [trust, permissions]

    commands = byob(env, "connections", "policy", "acme-s3", "--format", "cli")
    assert commands.returncode == 0, commands.stderr
    [(_, created_role), (_, put_policy)] = cli_calls(commands.stdout)
    assert created_role["RoleName"] == put_policy["RoleName"] == material["role_name"]
    assert json.loads(created_role["AssumeRolePolicyDocument"]) == trust
    assert json.loads(put_policy["PolicyDocument"]) == permissions

    default = byob(env, "connections", "policy", "acme-s3")
    assert default.returncode == 0 and "Trust policy" in default.stdout
    assert "AWSTemplateFormatVersion" not in default.stdout
