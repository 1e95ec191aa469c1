"""Import connections with the real `byob` command, as the README's "Imports" section shows
them: its models-file entry and its commands, run as written (the account ID aside) against
the vendor's PostgreSQL and the moto server with IAM enforcement on. The recipient creates
the role with the policies byob printed; byob lists and reads their files, loads each once,
shows the rejected ones and retries one."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from byob.demo.emulator import CustomerAccount, LocalAws
from tests.integration.test_aws_errors import customer_admin, vendor_session
from tests.support import CUSTOMER, pg_exec, write_config

pytestmark = pytest.mark.acceptance

README = Path(__file__).resolve().parents[2] / "README.md"
MODEL = {"name": "invoices", "table": "invoices", "tenant_column": "tenant_id",
         "cursor_column": "updated_at", "primary_key": ["id"]}  # fmt: skip
README_ACCOUNT = "123456789012"  # the README's example account: here, the customer's
BUCKET, REGION = "acme-drop", "eu-west-1"
HEADER = b"account,quantity,occurred_at\n"
LIMIT = 100  # max_file_bytes for the first runs: the big file is rejected until it is raised
GOOD = HEADER + b"a,1.5,2026-12-01T10:00:00Z\n"
BIG = HEADER + b"".join(b"b%d,2,2026-12-02T10:00:00Z\n" % i for i in range(1, 4))
BAD = HEADER + b"c,three,2026-12-03T10:00:00Z\n"


def readme_block(marker: str) -> str:
    """The README code block whose first line is the comment ``# marker``."""
    return README.read_text().split(f"# {marker}\n", 1)[1].split("```", 1)[0]


def readme_commands() -> dict[str, list[str]]:
    """The README's import commands by their command words ("imports retry"), as arguments."""
    commands: dict[str, list[str]] = {}
    for line in readme_block("import-files").replace("\\\n", " ").splitlines():
        args = shlex.split(line, comments=True)
        if args:
            assert args[0] == "byob", line
            words = [a for a in args[1:3] if not a.startswith("-")]
            words = words[:1] if words[0] == "migrate-imports" else words
            commands[" ".join(words)] = [a.replace(README_ACCOUNT, CUSTOMER) for a in args[1:]]
    return commands


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byob.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def models_file(path: Path, source: str, *, max_file_bytes: int | None) -> Path:
    """Our model, and the README's import (with a size limit while ``max_file_bytes``)."""
    config = write_config(path, source, [MODEL])
    limit = f"max_file_bytes = {max_file_bytes}\n" if max_file_bytes is not None else ""
    config.write_text(config.read_text() + readme_block("import-files-models") + limit)
    return config


@pytest.fixture
def customer(aws: LocalAws) -> CustomerAccount:
    customer = customer_admin(aws, REGION)
    customer.create_bucket(BUCKET)
    return customer


@pytest.fixture
def env(tmp_path: Path, pg_url: str, aws: LocalAws) -> dict[str, str]:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
        "CREATE TABLE public.usage_events (tenant_id text NOT NULL, account text NOT NULL, "
        "quantity numeric(18,6), occurred_at timestamptz)",
    )
    # byob's own identity: an IAM user that may assume roles, as enforcement needs.
    own = vendor_session(aws).get_credentials().get_frozen_credentials()
    environ = dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(models_file(tmp_path / "byob.toml", pg_url, max_file_bytes=LIMIT)),
        "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": own.access_key,
        "AWS_SECRET_ACCESS_KEY": own.secret_key,
        "COLUMNS": "400",  # tables wide enough that a message stays on one line
    }
    environ.pop("BYOB_DATABASE_URL", None)
    return environ


def usage_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT tenant_id, account, quantity FROM usage_events ORDER BY account"
        ).fetchall()


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_readme_imports_files_rejects_a_bad_one_and_retries_one(
    env: dict[str, str], customer: CustomerAccount, aws: LocalAws, pg_url: str, tmp_path: Path
) -> None:
    readme = readme_commands()

    def run(command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return byob(env, *readme.pop(command), *extra)

    ok(run("migrate-imports"))
    checked = ok(run("models check"))
    assert "import usage_events → public.usage_events: OK" in checked.stdout

    created = ok(run("connections create"))
    out = created.stdout
    assert "Created draft import connection acme-usage: byob reads the files of import " in out
    assert "usage_events from s3://acme-drop/usage into public.usage_events" in out
    for said in ("IAM role name", "External ID", "Trust policy", "Permissions policy"):
        assert said in out
    assert "byob connections validate acme-usage" in out
    assert "byob connections activate acme-usage" in out
    assert "s3:ListBucket" in out and "s3:PutObject" not in out and "deliver" not in out
    policies = json.loads(ok(byob(env, "connections", "policy", "acme-usage", "--json")).stdout)
    statements = policies["permissions_policy"]["Statement"]
    assert [s["Action"] for s in statements] == ["s3:ListBucket", "s3:GetObject"]
    customer.create_role(
        policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
    )
    s3 = customer.client("s3")
    assert len(GOOD) <= LIMIT < len(BIG) and len(BAD) <= LIMIT
    for key, body in [
        ("usage/2026/12/01.csv", GOOD),
        ("usage/2026/12/02.csv", BIG),
        ("usage/2026/12/03.csv", BAD),
        ("usage/notes.txt", b"not a file of the import"),
    ]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    aws.enforce_iam(True)  # from here on the role's policy is what lets byob in
    validated = ok(run("connections validate"))
    assert "Validation passed" in validated.stdout
    assert "PutObject was refused" in validated.stdout
    ok(run("connections activate"))

    ran = ok(run("transfers run"))
    assert "Imports of acme-usage" in ran.stdout
    assert "usage_events: 3 files seen: 1 imported (1 rows), 2 rejected" in ran.stdout
    assert "`byob imports rejected acme-usage` shows why" in ran.stdout
    assert usage_rows(pg_url) == [("acme", "a", Decimal("1.5"))]
    again = json.loads(ok(byob(env, "transfers", "run", "acme-usage", "--json")).stdout)
    [record] = again["transfers"]
    assert (record["type"], record["status"], record["model"], record["rows"]) == (
        "import",
        "succeeded",
        "usage_events",
        0,
    )
    assert record["import_counts"] == {
        "seen": 3,
        "imported": 0,
        "rejected": 0,
        "skipped": 2,
        "already": 0,
    }

    listed = ok(run("transfers list"))
    assert "2 rejected before, waiting for a retry" in listed.stdout
    history = json.loads(ok(byob(env, "transfers", "list", "acme-usage", "--json")).stdout)
    first = history["transfers"][-1]
    assert (first["import_counts"]["imported"], first["manifest"]) == (1, None)
    shown = ok(byob(env, "transfers", "show", first["id"])).stdout
    assert "import" in shown and "usage_events" in shown and "files seen" in shown
    assert "window" not in shown and "manifest" not in shown
    assert json.loads(ok(byob(env, "transfers", "show", first["id"], "--json")).stdout)[
        "import_counts"
    ] == {"seen": 3, "imported": 1, "rejected": 2, "skipped": 0, "already": 0}

    rejected = ok(run("imports rejected")).stdout
    assert "usage/2026/12/02.csv" in rejected and "max_file_bytes" in rejected
    assert "usage/2026/12/03.csv" in rejected and "line 2" in rejected
    as_json = json.loads(ok(byob(env, "imports", "rejected", "acme-usage", "--json")).stdout)
    assert (as_json["connection"], as_json["total"]) == ("acme-usage", 2)
    assert sorted(r["key"] for r in as_json["items"]) == [
        "usage/2026/12/02.csv",
        "usage/2026/12/03.csv",
    ]
    bad = next(r for r in as_json["items"] if r["key"].endswith("03.csv"))
    assert bad["problems"][0]["line"] == 2 and bad["problems"][0]["column"] == "quantity"
    assert bad["size"] == len(BAD) and "line 2" in bad["message"]
    one = json.loads(
        ok(byob(env, "imports", "rejected", "acme-usage", "--limit=1", "--json")).stdout
    )
    assert (len(one["items"]), one["total"]) == (1, 2)
    assert (
        "the 1 newest of 2 rejected files"
        in ok(byob(env, "imports", "rejected", "acme-usage", "--limit=1")).stdout
    )

    # The operator raises the limit; the big file is tried again, now.
    models_file(Path(env["BYOB_CONFIG"]), pg_url, max_file_bytes=None)
    retried = ok(run("imports retry"))
    assert "Trying usage/2026/12/02.csv again" in retried.stdout
    assert "3 files seen: 1 imported (3 rows), 1 rejected before" in retried.stdout
    assert [r[1] for r in usage_rows(pg_url)] == ["a", "b1", "b2", "b3"]
    assert readme == {}, "every command of the README's Imports section ran"

    later = ok(byob(env, "imports", "retry", "acme-usage", "usage/2026/12/03.csv", "--json"))
    assert json.loads(later.stdout) == {
        "connection": "acme-usage",
        "key": "usage/2026/12/03.csv",
        "cleared": 1,
    }
    unknown = byob(env, "imports", "retry", "acme-usage", "usage/nope.csv", "--json")
    assert unknown.returncode == 1
    error = json.loads(unknown.stdout)["error"]
    assert (error["code"], error["field"]) == ("not_found", "key")
    assert "`byob imports rejected acme-usage` lists them" in error["message"]
    said = byob(env, "imports", "retry", "acme-usage", "usage/nope.csv")
    assert said.returncode == 1 and said.stderr.startswith("error [key]: connection 'acme-usage'")


def test_connections_list_and_show_say_the_direction_and_the_import(env: dict[str, str]) -> None:
    common = ["--tenant=acme", f"--account-id={CUSTOMER}", f"--bucket={BUCKET}"]
    ok(byob(env, "connections", "create", "--name=in", *common, f"--region={REGION}",
            "--direction=import", "--import=usage_events"))  # fmt: skip
    ok(byob(env, "connections", "create", "--name=out", *common, f"--region={REGION}"))

    listed = ok(byob(env, "connections", "list")).stdout
    assert "direction" in listed and "import usage_events" in listed and "export" in listed
    views = json.loads(ok(byob(env, "connections", "list", "--json")).stdout)["connections"]
    assert {v["name"]: (v["direction"], v["import"]) for v in views} == {
        "in": ("import", "usage_events"),
        "out": ("export", ""),
    }
    shown = ok(byob(env, "connections", "show", "in")).stdout
    assert "direction" in shown and "usage_events" in shown
    view = json.loads(ok(byob(env, "connections", "show", "in", "--json")).stdout)["connection"]
    assert (view["direction"], view["import"]) == ("import", "usage_events")

    export = byob(env, "imports", "rejected", "out", "--json")
    assert export.returncode == 1
    assert json.loads(export.stdout)["error"]["code"] == "conflict"
    assert "only import connections reject files" in json.loads(export.stdout)["error"]["message"]


@pytest.mark.parametrize(
    ("args", "field", "said"),
    [
        (["--direction=sideways"], "direction", "direction 'sideways' is not export or import"),
        (["--direction=import"], "import", "import is required"),
        (["--direction=import", "--import=nope"], "import", "no import named 'nope'"),
        (["--direction=import", "--import=usage_events", "--type=athena"], "type", "not athena"),
        (["--import=usage_events"], "import", "only an import connection"),
    ],
)
def test_a_bad_direction_or_import_is_one_line_naming_the_field(
    env: dict[str, str], args: list[str], field: str, said: str
) -> None:
    given = ["--name=c", "--tenant=acme", f"--account-id={CUSTOMER}", f"--bucket={BUCKET}"]
    done = byob(env, "connections", "create", *given, f"--region={REGION}", *args)
    assert done.returncode == 1
    assert f"[{field}]" in done.stderr and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
