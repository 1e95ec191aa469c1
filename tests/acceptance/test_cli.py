"""The real `byob` command in subprocesses, as an operator uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import CUSTOMER, pg_exec, pg_insert, write_config

pytestmark = pytest.mark.acceptance

BYOB = [sys.executable, "-m", "byob.cli"]


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BYOB, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(tmp_path: Path, pg_url: str, aws: Any) -> dict[str, str]:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), issued_on date, updated_at timestamptz NOT NULL)",
    )
    pg_insert(
        pg_url,
        "INSERT INTO invoices VALUES (%s, %s, %s, '2026-01-31', now() - interval '1 hour')",
        [(i, "acme" if i % 2 else "globex", f"{i}.10") for i in range(1, 1001)],
    )
    config = write_config(
        tmp_path / "byob.toml",
        pg_url,
        [
            {
                "name": "invoices",
                "table": "invoices",
                "tenant_column": "tenant_id",
                "cursor_column": "updated_at",
                "primary_key": ["id"],
            }
        ],
    )
    return dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        "BYOB_SETTLE_LAG_SECONDS": "0",
    }


def test_operator_onboards_a_connection_and_runs_a_transfer(env: dict[str, str], aws: Any) -> None:
    checked = byob(env, "models", "check", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["models"][0]["columns"][2] == {
        "name": "amount",
        "source": "amount",
        "type": "decimal(18,2)",
        "glue_type": "decimal(18,2)",
    }

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
        "exports/billing",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    material = json.loads(created.stdout)
    assert material["connection"]["status"] == "draft"
    condition = material["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]
    assert condition["sts:ExternalId"] == material["external_id"]
    assert material["permissions_policy"]["Statement"][0]["Resource"] == (
        "arn:aws:s3:::acme-data/exports/billing/*"
    )

    again = json.loads(byob(env, "connections", "policy", "acme-s3", "--json").stdout)
    assert again["trust_policy"] == material["trust_policy"]

    refused = byob(env, "transfers", "run", "acme-s3")
    assert refused.returncode == 1 and "draft" in refused.stderr

    failing = byob(env, "connections", "validate", "acme-s3", "--json")
    assert failing.returncode == 1
    assert json.loads(failing.stdout)["passed"] is False  # no bucket yet

    customer = aws.customer(CUSTOMER, "eu-west-1")
    customer.create_bucket("acme-data")
    customer.create_role(
        material["role_name"], material["trust_policy"], material["permissions_policy"]
    )
    validated = byob(env, "connections", "validate", "acme-s3", "--json")
    assert validated.returncode == 0, validated.stdout
    checks = {c["name"]: c["outcome"] for c in json.loads(validated.stdout)["checks"]}
    assert checks == {
        "assume_role": "passed",
        "external_id_required": "warning",
        "bucket_region": "passed",
        "write_test_object": "passed",
        "delete_test_object": "passed",
    }
    assert byob(env, "connections", "activate", "acme-s3").returncode == 0

    ran = byob(env, "transfers", "run", "acme-s3", "--json")
    assert ran.returncode == 0, ran.stderr
    transfer = json.loads(ran.stdout)["transfers"][0]
    assert (transfer["rows"], transfer["status"], transfer["type"]) == (
        500,
        "succeeded",
        "full_refresh",
    )
    keys = [o["Key"] for o in customer.keys("acme-data")]
    assert any(
        k.startswith("exports/billing/invoices/dt=") and k.endswith(".parquet") for k in keys
    )
    assert any(k.startswith("exports/billing/_manifests/invoices/dt=") for k in keys)

    # `--all` runs every active connection: nothing new since, so an empty incremental.
    everything = byob(env, "transfers", "run", "--all", "--json")
    assert everything.returncode == 0, everything.stderr
    report = json.loads(everything.stdout)
    assert report["connections"] == ["acme-s3"]
    assert [(t["type"], t["rows"], t["status"]) for t in report["transfers"]] == [
        ("incremental", 0, "succeeded")
    ]
    assert byob(env, "transfers", "run").returncode == 2  # a connection or --all

    human = byob(env, "transfers", "list", "acme-s3")
    assert human.returncode == 0 and "succeeded" in human.stdout
    listed = json.loads(byob(env, "transfers", "list", "acme-s3", "--json").stdout)
    backfill = listed["transfers"][-1]  # newest first: the backfill is the oldest
    shown = json.loads(byob(env, "transfers", "show", backfill["id"], "--json").stdout)
    assert shown["files"][0]["state"] == "committed"
    assert (
        json.loads(byob(env, "connections", "list", "--json").stdout)["connections"][0]["status"]
        == "active"
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--account-id", "12345", "--bucket", "ok-bucket", "--region", "us-east-1"], "account_id"),
        (["--account-id", CUSTOMER, "--bucket", "Bad_Bucket", "--region", "us-east-1"], "bucket"),
        (["--account-id", CUSTOMER, "--bucket", "ok-bucket", "--region", "mars-1"], "region"),
        (
            [
                "--account-id",
                CUSTOMER,
                "--bucket",
                "ok-bucket",
                "--region",
                "us-east-1",
                "--base-path",
                "/abs",
            ],
            "base_path",
        ),
        (
            [
                *("--account-id", CUSTOMER, "--bucket", "ok-bucket", "--region", "us-east-1"),
                *("--frequency", "30"),
            ],
            "frequency_minutes",
        ),
    ],
)
def test_bad_fields_are_one_clear_line_and_change_nothing(
    env: dict[str, str], args: list[str], field: str
) -> None:
    result = byob(env, "connections", "create", "--name", "c", "--tenant", "acme", *args)
    assert result.returncode == 1
    assert f"[{field}]" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(byob(env, "connections", "list", "--json").stdout)["connections"] == []


@pytest.mark.parametrize(
    ("left_out", "line"),
    [
        ("--region", "region is required: the AWS region of the bucket, e.g. eu-west-1"),
        ("--bucket", "bucket is required: the name of an existing S3 bucket in that account"),
        ("--account-id", "account_id is required: the 12-digit ID of the AWS account"),
    ],
)
def test_a_required_option_left_out_says_it_is_required(
    env: dict[str, str], left_out: str, line: str
) -> None:
    given = {"--account-id": CUSTOMER, "--bucket": "ok-bucket", "--region": "us-east-1"}
    args = [x for option, value in given.items() if option != left_out for x in (option, value)]
    result = byob(env, "connections", "create", "--name", "c", "--tenant", "acme", *args)
    assert result.returncode == 1
    assert line in result.stderr, result.stderr
    assert "''" not in result.stderr and "ap-southeast-7" not in result.stderr  # no region list


def test_a_malformed_models_file_names_the_model_and_field(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[source]\nurl = "postgresql://x"\n[[models]]\nname = "m"\ntable = "t"\n'
        'tenant_column = "a"\ncursor_column = "b"\nprimary_key = ["id"]\ncolour = "red"\n'
    )
    result = byob(env | {"BYOB_CONFIG": str(bad)}, "models", "check")
    assert result.returncode == 1
    assert "models[0]" in result.stderr and "colour" in result.stderr

    missing_column = byob(
        env,
        "--config",
        str(
            write_config(
                tmp_path / "m.toml",
                env_pg(env),
                [
                    {
                        "name": "invoices",
                        "table": "invoices",
                        "tenant_column": "tenant_id",
                        "cursor_column": "changed_at",
                        "primary_key": ["id"],
                    }
                ],
            )
        ),
        "models",
        "check",
    )
    assert missing_column.returncode == 1
    assert "model 'invoices'" in missing_column.stderr and "cursor_column" in missing_column.stderr


def env_pg(env: dict[str, str]) -> str:
    text = Path(env["BYOB_CONFIG"]).read_text()
    return text.split('url = "', 1)[1].split('"', 1)[0]


def test_secrets_rotate_reseals_under_the_new_key(env: dict[str, str]) -> None:
    import secrets

    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env = env | {"BYOB_SECRET_KEY": old, "BYOB_SECRET_ACCESS_KEY": "s" * 40}
    created = byob(
        env,
        "connections",
        "create",
        "--name=h1",
        "--tenant=acme",
        f"--account-id={CUSTOMER}",
        "--bucket=acme-data",
        "--region=eu-west-1",
        "--access-key-id=AKIAIOSFODNN7EXAMPLE",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    missing = byob(env | {"BYOB_SECRET_KEY": new}, "secrets", "rotate")
    assert missing.returncode == 1 and "BYOB_SECRET_KEYS_OLD" in missing.stderr
    rotating = env | {"BYOB_SECRET_KEY": new, "BYOB_SECRET_KEYS_OLD": old}
    first = byob(rotating, "secrets", "rotate", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["resealed"] == 1
    assert json.loads(byob(rotating, "secrets", "rotate", "--json").stdout)["resealed"] == 0


def test_webhook_events_wait_in_the_outbox_and_can_be_sent_again(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tests.receivers import Receiver
    from tests.support import free_port

    down = env | {
        "BYOB_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook",
        "BYOB_WEBHOOK_SECRET": "whsec-cli",
    }
    for args in (
        [
            "connections",
            "create",
            "--name=l1",
            "--tenant=acme",
            "--type=local",
            f"--path={tmp_path}",
        ],
        ["connections", "validate", "l1"],
        ["connections", "activate", "l1"],
        ["transfers", "run", "l1"],
    ):
        assert byob(down, *args).returncode == 0
    [event] = json.loads(byob(down, "webhooks", "list", "--json").stdout)["webhooks"]
    assert (event["event"], event["status"], event["attempts"]) == (
        "transfer.succeeded",
        "pending",
        1,
    )
    assert "refused" in event["last_error"].lower()  # tried once as the command ended

    receiver = Receiver("whsec-cli")
    try:
        up = down | {"BYOB_WEBHOOK_URL": receiver.url}
        again = byob(up, "webhooks", "redeliver", event["id"], "--json")
        assert again.returncode == 0, again.stderr
        assert [(r.event, r.status, r.verified) for r in receiver.received] == [
            ("transfer.succeeded", 200, True)
        ]
    finally:
        receiver.close()
    [sent] = json.loads(byob(down, "webhooks", "list", "--json").stdout)["webhooks"]
    assert sent["status"] == "delivered" and sent["id"] == event["id"]
    assert json.loads(byob(down, "webhooks", "list", "--failed", "--json").stdout)["webhooks"] == []


def test_the_frequency_is_chosen_at_creation(env: dict[str, str]) -> None:
    created = byob(
        env, "connections", "create", "--name", "hourly", "--tenant", "acme", "--account-id",
        CUSTOMER, "--bucket", "ok-bucket", "--region", "us-east-1", "--frequency", "60", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["connection"]["frequency_minutes"] == 60
