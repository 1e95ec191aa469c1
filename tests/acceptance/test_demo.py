"""`byob demo`, the README's first command, end to end in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYOB_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "byob.cli", "demo", "--workdir", str(tmp_path), "--json"],
        env=env | {"COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["source_rows"] >= 100_000
    assert figures["first_transfer_rows"] == figures["tenant_rows"]
    assert 0 < figures["second_transfer_rows"] < figures["first_transfer_rows"]
    assert (
        sum(figures["delivered"].values())
        == figures["first_transfer_rows"] + figures["second_transfer_rows"]
    )
    out = result.stderr  # the walk-through, for people
    for step in (
        "billing database",
        "customer's account",
        "Onboarding",
        "First transfer",
        "incremental transfer",
        "bucket holds",
        "DuckDB",
    ):
        assert step in out
    assert "121,567 rows" in out
    assert "assume_role" in out and "passed" in out
    assert "every row version delivered exactly once" in out
    assert "_manifests/" in out and ".parquet" in out
    assert (tmp_path / "billing.sqlite").exists()
