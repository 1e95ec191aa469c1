"""`byob models capture-deletes` (printed, then applied), `byob models check` reporting
capture, and `byob models prune-deletes`, as the real command in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support import pg_exec, write_config

pytestmark = pytest.mark.acceptance

MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byob.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(tmp_path: Path, pg_url: str, **model: object) -> dict[str, str]:
    config = write_config(tmp_path / "byob.toml", pg_url, [MODEL | model])
    return dict(os.environ) | {"BYOB_HOME": str(tmp_path / ".byob"), "BYOB_CONFIG": str(config)}


def test_capture_deletes_prints_the_sql_then_applies_it_and_check_reports_it(
    tmp_path: Path, pg_url: str
) -> None:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
        "INSERT INTO invoices VALUES (1, 'acme', now()), (2, 'acme', now())",
    )
    env = _env(tmp_path, pg_url, capture_deletes=True)

    checked = byob(env, "models", "check", "--json")
    assert checked.returncode == 1  # declared, not installed: its transfers would fail
    [state] = json.loads(checked.stdout)["delete_capture"]
    assert state["installed"] is False and "capture-deletes invoices --apply" in state["problem"]

    printed = byob(env, "models", "capture-deletes", "invoices")
    assert printed.returncode == 0, printed.stderr
    sql = printed.stdout
    assert "CREATE TABLE IF NOT EXISTS byob_deleted_rows" in sql
    assert 'AFTER DELETE ON "invoices"' in sql and "clock_timestamp()" in sql
    with psycopg.connect(pg_url) as db:  # printing changed nothing
        assert db.execute("SELECT to_regclass('byob_deleted_rows')").fetchone() == (None,)
    # What a DBA does with the printed SQL: run it as it is.
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute(sql.encode())
        db.execute("DELETE FROM invoices WHERE id = 1")
        assert db.execute("SELECT tenant, primary_key FROM byob_deleted_rows").fetchall() == [
            ("acme", {"id": 1})
        ]

    applied = byob(env, "models", "capture-deletes", "invoices", "--apply")  # idempotent
    assert applied.returncode == 0, applied.stderr
    assert "captured for model invoices" in applied.stdout
    checked = byob(env, "models", "check")
    assert checked.returncode == 0, checked.stderr
    assert "model invoices: hard-delete capture installed" in checked.stdout

    pruned = byob(env, "models", "prune-deletes", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == {"pruned": {"invoices": 1}}  # no connection waits


def test_capture_deletes_applied_without_the_model_declaring_it_says_what_is_left(
    tmp_path: Path, pg_url: str
) -> None:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
    )
    applied = byob(_env(tmp_path, pg_url), "models", "capture-deletes", "invoices", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "set capture_deletes = true on model invoices" in applied.stdout
    checked = byob(_env(tmp_path, pg_url), "models", "check")
    assert checked.returncode == 0, checked.stderr
    assert "model invoices: hard-delete capture installed" in checked.stdout
