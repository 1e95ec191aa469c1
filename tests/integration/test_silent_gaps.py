"""Nothing goes missing quietly, on a PostgreSQL source and through the real CLI: rows whose
cursor is NULL, a tenant that matches no row, a reader without SELECT, query models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import INVOICES_MODEL, pg_exec, pg_insert

pytestmark = pytest.mark.integration

MODEL = INVOICES_MODEL


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byob.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def source(pg_url: str) -> str:
    """752 invoices of acme, 2 of them with a NULL updated_at; 10 of globex."""
    pg_exec(
        pg_url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz)",
    )
    pg_insert(
        pg_url,
        "INSERT INTO invoices VALUES (%s, %s, %s, "
        "CASE WHEN %s THEN NULL ELSE now() - interval '1 hour' END)",
        [(i, "acme" if i <= 752 else "globex", f"{i}.50", i in (7, 8)) for i in range(1, 763)],
    )
    return pg_url


def env_for(tmp_path: Path, source_url: str, models: list[dict[str, Any]]) -> dict[str, str]:
    lines = [f'[source]\nurl = "{source_url}"']
    for m in models:
        lines.append("[[models]]")
        for key, value in m.items():
            lines.append(f"{key} = {json.dumps(value)}")
    config = tmp_path / "byob.toml"
    config.write_text("\n".join(lines) + "\n")
    return dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_SETTLE_LAG_SECONDS": "0",
    }


def local(env: dict[str, str], tmp_path: Path, name: str, tenant: str) -> dict[str, Any]:
    created = byob(
        env,
        "connections",
        "create",
        f"--name={name}",
        f"--tenant={tenant}",
        "--type=local",
        f"--path={tmp_path / 'out' / name}",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert byob(env, "connections", "validate", name).returncode == 0
    assert byob(env, "connections", "activate", name).returncode == 0
    return dict(json.loads(created.stdout))


def test_null_cursors_are_counted_by_models_check_and_fail_the_transfer(
    tmp_path: Path, source: str
) -> None:
    env = env_for(tmp_path, source, [MODEL])
    checked = byob(env, "models", "check", "--json")
    assert checked.returncode == 1  # transfers of acme would fail: said before they run
    [model] = json.loads(checked.stdout)["models"]
    assert model["null_cursor_rows"] == 2 and model["on_null_cursor"] == "fail"
    assert "NOT NULL" in model["problems"][0] and "COALESCE" in model["problems"][0]

    local(env, tmp_path, "c1", "acme")
    ran = byob(env, "transfers", "run", "c1", "--json")
    assert ran.returncode == 1
    assert "2 rows of tenant 'acme' have a NULL 'updated_at'" in ran.stderr
    listed = json.loads(byob(env, "transfers", "list", "c1", "--json").stdout)["transfers"]
    assert [(t["status"], t["rows"]) for t in listed] == [("failed", 0)]


@pytest.mark.parametrize(
    ("policy", "rows", "excluded"), [("backfill_only", 752, 0), ("exclude", 750, 2)]
)
def test_null_cursors_delivered_in_backfills_or_excluded_and_counted(
    tmp_path: Path, source: str, policy: str, rows: int, excluded: int
) -> None:
    env = env_for(tmp_path, source, [MODEL | {"on_null_cursor": policy}])
    checked = byob(env, "models", "check", "--json")
    assert checked.returncode == 0, checked.stdout
    assert json.loads(checked.stdout)["models"][0]["warnings"][-1].startswith(
        "model 'invoices': 2 rows have a NULL 'updated_at'"
    )
    local(env, tmp_path, "c1", "acme")
    [transfer] = json.loads(byob(env, "transfers", "run", "c1", "--json").stdout)["transfers"]
    assert (transfer["rows"], transfer["excluded_rows"]) == (rows, excluded)
    if excluded:
        assert "2 rows with a NULL 'updated_at' were left out" in transfer["note"]


def test_a_tenant_with_spaces_is_refused_and_one_without_rows_is_said(
    tmp_path: Path, source: str
) -> None:
    env = env_for(tmp_path, source, [MODEL | {"on_null_cursor": "exclude"}])
    padded = byob(
        env,
        "connections",
        "create",
        "--name=c0",
        "--tenant=  acme ",
        "--type=local",
        f"--path={tmp_path}",
    )
    assert padded.returncode == 1 and "did you mean 'acme'?" in padded.stderr
    assert json.loads(byob(env, "connections", "list", "--json").stdout)["connections"] == []

    created = local(env, tmp_path, "nobody", "nosuchtenant")
    assert created["warnings"] == [
        "tenant 'nosuchtenant' has no rows in any model it receives (invoices): its transfers deliver "
        "nothing until it has; check that it is the tenant column's exact value"
    ]
    [transfer] = json.loads(byob(env, "transfers", "run", "nobody", "--json").stdout)["transfers"]
    assert transfer["rows"] == 0 and "has no rows in this model yet" in transfer["note"]

    counted = json.loads(byob(env, "models", "check", "--tenant=globex", "--json").stdout)
    assert counted["models"][0]["tenant_rows"] == 10


def test_models_check_names_the_grant_a_reader_lacks(tmp_path: Path, source: str) -> None:
    role = f"reader_{os.getpid()}_{tmp_path.name[-6:]}".lower().replace("-", "_")
    pg_exec(
        source, f"CREATE ROLE {role} LOGIN", f"GRANT SELECT (id, tenant_id) ON invoices TO {role}"
    )
    try:
        reader_url = source.replace("postgres@", f"{role}@", 1)
        env = env_for(tmp_path, reader_url, [MODEL])
        checked = byob(env, "models", "check")
        assert checked.returncode == 1
        assert f"the source user '{role}' cannot read invoices" in checked.stderr
        assert f'GRANT SELECT ON invoices TO "{role}"' in checked.stderr
    finally:
        pg_exec(source, f"REVOKE ALL ON invoices FROM {role}", f"DROP ROLE {role}")


def test_a_query_model_keeps_exact_types_and_is_filtered_like_a_table(
    tmp_path: Path, source: str
) -> None:
    query = {
        "name": "paid",
        "query": "SELECT id, tenant_id, (amount * 2)::numeric(20,2) AS doubled, "
        "coalesce(updated_at, 'epoch') AS updated_at FROM invoices",
        "tenant_column": "tenant_id",
        "cursor_column": "updated_at",
        "primary_key": ["id"],
    }
    env = env_for(tmp_path, source, [query])
    checked = byob(env, "models", "check", "--json")
    assert checked.returncode == 0, checked.stderr  # COALESCE: no NULL cursor left
    [model] = json.loads(checked.stdout)["models"]
    assert {c["name"]: c["type"] for c in model["columns"]}["doubled"] == "decimal(20,2)"
    local(env, tmp_path, "c1", "globex")
    [transfer] = json.loads(byob(env, "transfers", "run", "c1", "--json").stdout)["transfers"]
    assert transfer["rows"] == 10
    files = list((tmp_path / "out" / "c1" / "paid").rglob("*.parquet"))
    assert files, "no Parquet file written"
