"""The real `byob` command in subprocesses: the note on rows the settle lag keeps for the next
transfer, the permissions policy an update changed, and JSON progress lines for scripts. On
the embedded default (SQLite state, a SQLite source, local destinations)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byob.sources.sqlite import TIMESTAMP_TEXT

pytestmark = pytest.mark.acceptance

BYOB = [sys.executable, "-m", "byob.cli"]


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BYOB, *args], env=env, capture_output=True, text=True, timeout=300)


def ok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = byob(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT, updated_at TIMESTAMPTZ)"
        )
        db.executemany(
            "INSERT INTO invoices VALUES (?, ?, '2026-01-01 00:00:00.000000')",
            [(i, "acme" if i % 2 else "globex") for i in range(1, 41)],
        )
    return path


@pytest.fixture
def env(tmp_path: Path, source: Path) -> dict[str, str]:
    config = tmp_path / "byob.toml"
    config.write_text(
        f'[source]\npath = "{source}"\n[[models]]\nname = "invoices"\ntable = "invoices"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\nprimary_key = ["id"]\n'
    )
    return dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_SERVICE_PRINCIPAL_ARN": "arn:aws:iam::123456789012:role/byob",
        "COLUMNS": "200",  # Rich wraps at 80 columns when not on a terminal
    }


def local_connection(env: dict[str, str], tmp_path: Path) -> None:
    ok(env, "connections", "create", "--name=l1", "--tenant=acme", "--type=local",
       f"--path={tmp_path / 'out'}")  # fmt: skip
    ok(env, "connections", "validate", "l1")
    ok(env, "connections", "activate", "l1")


def test_rows_held_back_by_the_settle_lag_are_said(
    env: dict[str, str], tmp_path: Path, source: Path
) -> None:
    local_connection(env, tmp_path)
    first = ok(env, "transfers", "run", "l1")
    assert "wait for the next transfer" not in first.stdout

    now = datetime.now(UTC).strftime(TIMESTAMP_TEXT)
    with sqlite3.connect(source) as db:  # two of acme's rows change, one of globex's
        db.execute("UPDATE invoices SET updated_at = ? WHERE id IN (1, 3, 2)", (now,))

    ran = ok(env, "transfers", "run", "l1")
    assert "invoices: 2 rows changed in the last 30 s wait for the next transfer" in ran.stdout

    as_json = json.loads(ok(env, "transfers", "run", "l1", "--json").stdout)
    [transfer] = as_json["transfers"]
    assert transfer["rows"] == 0 and transfer["held_back_rows"] == 2
    assert transfer["note"] == "2 rows changed in the last 30 s wait for the next transfer"

    listed = json.loads(ok(env, "transfers", "list", "l1", "--json").stdout)["transfers"]
    assert listed[0]["note"] == transfer["note"]  # what the history and the API say too

    no_lag = env | {"BYOB_SETTLE_LAG_SECONDS": "0"}
    caught_up = json.loads(ok(no_lag, "transfers", "run", "l1", "--json").stdout)
    [delivered] = caught_up["transfers"]
    assert delivered["rows"] == 2 and delivered["held_back_rows"] == 0 and not delivered["note"]


def test_a_new_base_path_says_the_policy_changed_with_its_diff(env: dict[str, str]) -> None:
    ok(env, "connections", "create", "--name=s1", "--tenant=acme", "--type=s3",
       "--account-id=210987654321", "--bucket=acme-bkt", "--region=eu-west-1",
       "--base-path=exports/old")  # fmt: skip

    moved = ok(env, "connections", "update", "s1", "--base-path=exports/new")
    assert moved.stdout.splitlines() == [
        "Connection s1 updated; status draft",
        "note: the permissions policy changed: the recipient must paste the new one into IAM "
        "again before the connection is validated and activated",
        "statement ByobWriteUnderBasePath",
        "  Resource:",
        "  - arn:aws:s3:::acme-bkt/exports/old/*",
        "  + arn:aws:s3:::acme-bkt/exports/new/*",
    ]

    again = json.loads(ok(env, "connections", "update", "s1", "--bucket=other", "--json").stdout)
    assert again["connection"]["bucket"] == "other"
    assert again["policy_changed"]["statements"] == [
        {
            "sid": "ByobWriteUnderBasePath",
            "removed": {"Resource": ["arn:aws:s3:::acme-bkt/exports/new/*"]},
            "added": {"Resource": ["arn:aws:s3:::other/exports/new/*"]},
        }
    ]
    assert again["policy_changed"]["permissions_policy"]["Statement"][0]["Resource"] == (
        "arn:aws:s3:::other/exports/new/*"
    )

    same = ok(env, "connections", "update", "s1", "--frequency=60")
    assert "policy" not in same.stdout
    assert "policy_changed" not in json.loads(
        ok(env, "connections", "update", "s1", "--frequency=360", "--json").stdout
    )


def test_progress_lines_on_stderr_when_it_is_not_a_terminal(
    env: dict[str, str], tmp_path: Path
) -> None:
    local_connection(env, tmp_path)
    frequent = env | {"BYOB_PROGRESS_INTERVAL_SECONDS": "0", "BYOB_SETTLE_LAG_SECONDS": "0"}

    for args in (["--json"], []):  # stderr is a pipe either way
        ok(frequent, "transfers", "run", "l1", "--full-refresh", *args)
    ran = ok(frequent, "transfers", "run", "l1", "--full-refresh", "--json")
    lines = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    progress = [line["progress"] for line in lines if "progress" in line]
    [transfer] = json.loads(ran.stdout)["transfers"]
    assert progress, ran.stderr
    # No total for a script: it would cost one more read of the window (see WithTotal).
    assert {(p["transfer"], p["model"], p["total"], p["estimated"]) for p in progress} == {
        (transfer["id"], "invoices", None, False)
    }
    assert progress[-1]["rows"] == 20 and progress[-1]["eta_seconds"] is None
    assert set(progress[-1]) == {
        "transfer", "model", "rows", "total", "estimated", "rows_per_second", "bytes",
        "eta_seconds",
    }  # fmt: skip

    quiet = ok(env | {"BYOB_SETTLE_LAG_SECONDS": "0"}, "transfers", "run", "l1", "--json")
    assert '"progress"' not in quiet.stderr  # the default: one line every 5 s, none this quick
