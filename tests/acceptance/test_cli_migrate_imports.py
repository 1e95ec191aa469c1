"""`byob migrate-imports` with the real CLI: it creates the imports' ledger in the models
file's [source] PostgreSQL database (again: nothing changes), prints the same SQL for a DBA
with --sql, and says plainly that a SQLite source cannot take imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.support import pg_exec, scratch_database, write_config

MODEL = {"name": "invoices", "table": "invoices", "tenant_column": "tenant_id",
         "cursor_column": "updated_at", "primary_key": ["id"]}  # fmt: skip


def byob(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(write_config(tmp_path / "byob.toml", source, [MODEL])),
    }
    env.pop("BYOB_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "byob.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ledger_columns(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        return [
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'byob_import_ledger' ORDER BY ordinal_position"
            )
        ]


def test_the_ledger_is_created_once_and_its_sql_printed(tmp_path: Path, pg_url: str) -> None:
    for _ in range(2):
        done = byob(tmp_path, pg_url, "migrate-imports", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"ledger": "byob_import_ledger", "created": True}
    assert ledger_columns(pg_url)[:3] == ["connection_id", "object_key", "etag"]

    printed = byob(tmp_path, pg_url, "migrate-imports", "--sql")
    assert printed.returncode == 0 and printed.stdout.startswith("CREATE TABLE IF NOT EXISTS")
    with scratch_database(pg_url.rsplit("/", 1)[0] + "/postgres") as other:
        with psycopg.connect(other, autocommit=True) as db:
            db.execute(printed.stdout)  # what a DBA would run
        assert ledger_columns(other) == ledger_columns(pg_url)


def test_a_sqlite_source_cannot_take_imports(tmp_path: Path) -> None:
    done = byob(tmp_path, f"sqlite:///{tmp_path / 'src.db'}", "migrate-imports")
    assert done.returncode == 1
    assert "imports load into PostgreSQL: the models file's [source] url must be" in done.stderr


IMPORT = """
[[imports]]
name = "usage_events"
table = "usage_events"
tenant_column = "tenant_id"
format = "csv"
columns = { account = "text", quantity = "integer" }
"""


def test_models_check_checks_each_import_against_its_table(tmp_path: Path, pg_url: str) -> None:
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "updated_at timestamptz NOT NULL)",
        "CREATE TABLE usage_events (tenant_id text, account text, quantity boolean)",
    )

    def check() -> subprocess.CompletedProcess[str]:
        config = write_config(tmp_path / "byob.toml", pg_url, [MODEL])
        config.write_text(config.read_text() + IMPORT)
        env = dict(os.environ) | {"BYOB_HOME": str(tmp_path / ".byob"), "BYOB_CONFIG": str(config)}
        env.pop("BYOB_DATABASE_URL", None)
        return subprocess.run(
            [sys.executable, "-m", "byob.cli", "models", "check", "--json"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    refused = check()
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["imports"] == [
        {
            "name": "usage_events",
            "table": "usage_events",
            "problems": [
                "column 'quantity' of usage_events is boolean, but the import declares integer: "
                "declare boolean, or change the column",
                "byob_import_ledger does not exist; run `byob migrate-imports`",
            ],
        }
    ]
    pg_exec(pg_url, "ALTER TABLE usage_events ALTER quantity TYPE integer USING quantity::integer")
    assert byob(tmp_path, pg_url, "migrate-imports").returncode == 0
    fine = check()
    assert fine.returncode == 0, fine.stderr
    assert json.loads(fine.stdout)["imports"][0]["problems"] == []
