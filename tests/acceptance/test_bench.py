"""The benchmarks `make bench` runs, at a size a test can afford: every contender but dlt (a
bench-only dependency) writes exactly the source's rows, and the report carries the figures
and ratios the README quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_transfer_bench_runs_end_to_end_at_a_small_size(tmp_path: Path, pg_url: str) -> None:
    work = tmp_path / "bench"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "transfer_bench.py"),
            "--pg-url",
            pg_url,
            "--rows",
            "10000",
            "--tenants",
            "10",
            "--work-dir",
            str(work),
            "--floor-inline-tenant",
            "--skip-dlt",
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((work / "results.json").read_text())
    figures = {(f["contender"], f["scope"]): f for f in results["figures"]}
    expected = {"largest": 2_000, "all": 10_000}
    for contender in ("floor-serial", "floor-overlapped", "byob", "s3-upload-floor", "byob → S3"):
        for scope, rows in expected.items():
            figure = figures[(contender, scope)]
            assert figure["status"] == "ok", figure
            assert figure["rows"] == figure["expected_rows"] == rows, figure
            assert figure["seconds"] > 0 and figure["peak_rss_mb"] > 0, figure
    assert figures[("byob", "all")]["files"] == 10  # one file per tenant
    names = {r["name"] for r in results["ratios"]}
    assert "byob all-tenant peak RSS ÷ largest-tenant peak RSS" in names
    assert "byob time ÷ overlapped floor time (largest tenant)" in names
    for scope in ("largest tenant", "all tenants"):
        assert f"byob → S3 time ÷ (byob time + upload floor time) ({scope})" in names
    upload = figures[("s3-upload-floor", "all")]
    assert upload["files"] == 10 and upload["detail"]["connections"] == 2, upload


def test_import_bench_runs_end_to_end_at_a_small_size(tmp_path: Path, pg_url: str) -> None:
    tiny = ["--rows-per-file", "2000", "--files", "2", "--work-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(BENCH / "import_bench.py"), "--pg-url", pg_url, *tiny],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "import-results.json").read_text())
    for figure in results["figures"]:  # floor, byob: each file's rows once, counted in the table
        assert (figure["status"], figure["rows"]) == ("ok", 4000), figure
        assert figure["seconds"] > 0 and figure["peak_rss_mb"] > 0, figure
    assert results["ratios"]["byob seconds ÷ floor seconds"] > 0


def test_transfer_bench_runs_another_shape_against_the_naive_loop(
    tmp_path: Path, pg_url: str
) -> None:
    work = tmp_path / "bench"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "transfer_bench.py"),
            *("--pg-url", pg_url, "--rows", "4000", "--tenants", "4", "--shape", "numeric"),
            *("--scope", "largest", "--work-dir", str(work), "--timeout", "240"),
            *("--floor-inline-tenant", "--skip-dlt", "--skip-s3"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((work / "results.json").read_text())
    figures = {f["contender"]: f for f in results["figures"]}
    assert set(figures) == {"floor-serial", "floor-overlapped", "naive-loop", "byob"}
    for figure in figures.values():
        assert figure["shape"] == "numeric" and figure["status"] == "ok", figure
        assert figure["rows"] == figure["expected_rows"] > 0, figure
    names = {r["name"] for r in results["ratios"]}
    assert "byob time ÷ naive loop time (numeric, largest tenant)" in names


def test_queue_bench_dispatches_and_times_small_transfers_at_a_small_size(
    tmp_path: Path, pg_url: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "queue_bench.py"),
            "--pg-url",
            pg_url,
            "--connections",
            "30",
            "--workers",
            "",
            "--small-transfers",
            "2",
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (results_file,) = tmp_path.glob("*/results.json")
    results = json.loads(results_file.read_text())
    assert results["scheduler"]["dispatched"] == 30
    small = results["small_transfers"]
    for destination in ("local", "s3"):
        for new_rows in ("0", "1", "10", "100"):  # each transfer delivered exactly these
            figure = small[destination][new_rows]
            assert figure["transfers"] == 2, figure
            assert figure["wall_median_ms"] >= figure["own_median_ms"] > 0, figure
    assert small["s3"]["1"]["storage_calls_per_transfer"] >= 3  # file, schema, manifest
