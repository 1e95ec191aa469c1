"""Transfer benchmark: PostgreSQL rows → per-tenant Parquet, byob against a floor and dlt.

    python bench/transfer_bench.py --pg-url URL [--rows 5000000] [--tenant-share 0.2]
        [--layout interleaved|clustered] [--work-dir DIR] [--timeout 300] [--repeat 1]
        [--scope largest|all|both] [--shape invoices|numeric|text_jsonb|uuid|narrow|all]
        [--skip-dlt] [--skip-naive] [--skip-byob] [--skip-s3] [--floor-inline-tenant]
        [--keep-outputs]

Contenders, each in its own subprocess, on two scopes (the largest tenant; every tenant), for
each table shape (bench/shapes.py):
  floor-serial       ADBC record-batch stream → cast → ParquetWriter, one thread
  floor-overlapped   the same, reading and encoding on two threads
  naive-loop         ADBC record-batch stream → ParquetWriter, ADBC's own types, one thread
  dlt                sql_table(backend="connectorx", arrow_stream) → filesystem/parquet
  byob               the byob CLI (`transfers run`), to a local directory
  s3-upload-floor    boto3 uploading byob's local output to the emulator, as byob uploads
  byob → S3          the byob CLI, to an S3 emulator (moto)

See bench/README.md for what the figures mean and the targets they are held to.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import dlt_contender  # noqa: E402  (cheap: dlt itself is imported only in the child)
from byob_contender import Byob, Destination  # noqa: E402
from dataset import LARGEST_TENANT, LAYOUTS, Dataset, ensure_dataset, tenant_row_counts, tenants  # noqa: E402
from measure import run_measured  # noqa: E402
from outputs import Output, S3Emulator, local_output, s3_output  # noqa: E402
from shapes import INVOICES, SHAPES, Shape  # noqa: E402
from upload_floor import BENCH_CONNECTIONS  # noqa: E402

SCOPES = {"largest": "largest tenant", "all": "all tenants"}
FLOORS = ("floor-serial", "floor-overlapped")
NAIVE = "naive-loop"
BYOB_LOCAL, BYOB_S3 = "byob", "byob → S3"
UPLOAD_FLOOR = "s3-upload-floor"

# What byob is held to (bench/README.md explains each).
TARGET_VS_DLT = 1.3  # byob rows/s ÷ dlt rows/s, at least
TARGET_VS_FLOOR = 1.15  # byob seconds ÷ overlapped-floor seconds, at most (invoices)
TARGET_VS_FLOOR_SHAPES = 1.0  # the same, on every other shape (issue 16)
TARGET_RSS_MB = 300.0  # byob peak RSS, below
TARGET_RSS_GROWTH = 1.10  # byob all-tenant peak RSS ÷ largest-tenant peak RSS, at most
TARGET_VS_NAIVE = 0.85  # byob seconds ÷ naive-loop seconds, at most
TARGET_S3_VS_UPLOAD_FLOOR = 1.2  # byob → S3 seconds ÷ (byob + upload floor seconds), at most

# Piped output (make, CI logs) would otherwise be squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 150)


@dataclass
class Figure:
    """One contender on one scope. Rows and bytes are read back from the written files."""

    contender: str
    scope: str  # "largest" | "all"
    shape: str = INVOICES.name
    status: str = "ok"  # ok | error | timeout
    expected_rows: int = 0
    rows: int | None = None
    bytes: int | None = None
    files: int | None = None
    seconds: float | None = None
    peak_rss_mb: float | None = None
    detail: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.ok and self.rows and self.seconds else None

    @property
    def mb_per_s(self) -> float | None:
        return (
            self.bytes / 2**20 / self.seconds if self.ok and self.bytes and self.seconds else None
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record_output(self, output: Output) -> None:
        self.rows, self.bytes, self.files = output.rows, output.bytes, output.files

    def as_json(self) -> dict:
        return {**asdict(self), "rows_per_s": self.rows_per_s, "mb_per_s": self.mb_per_s}


# ---------------------------------------------------------------------------------------------
# Contenders


def run_child_contender(name: str, scope: str, shape: Shape, args: argparse.Namespace) -> Figure:
    """A floor, the naive loop or dlt, in its own `run_contender.py` process."""
    out = args.work_dir / "out" / f"{name}-{scope}"
    result_file = args.work_dir / "out" / f"{name}-{scope}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH_DIR / "run_contender.py"), name, "--pg-url", args.pg_url]
    cmd += ["--scope", scope, "--out", str(out), "--result", str(result_file)]
    cmd += ["--tenants", str(args.tenants), "--shape", shape.name]
    if args.floor_inline_tenant:
        cmd.append("--inline-tenant")
    # cwd = work dir: dlt reads ./.dlt/ config from its working directory; keep it empty.
    measured = run_measured(cmd, cwd=args.work_dir, timeout=args.timeout)
    figure = Figure(
        name, scope, shape.name, seconds=measured.seconds, peak_rss_mb=measured.peak_rss_mb
    )
    if measured.timed_out:
        figure.status = "timeout"
        figure.detail["error"] = f"killed after {args.timeout:.0f}s"
    elif measured.returncode != 0:
        figure.status = "error"
        figure.detail["stderr"] = measured.stderr[-3000:]
    else:
        inner = json.loads(result_file.read_text())
        figure.detail = {k: v for k, v in inner.items() if k != "files"}
        written = dlt_contender.table_dir(out, shape.table) if name == "dlt" else out
        figure.record_output(local_output(written))
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    return figure


def byob_local_out(args: argparse.Namespace, scope: str) -> Path:
    return args.work_dir / "out" / f"byob-{scope}"


def run_byob(
    label: str,
    scope: str,
    shape: Shape,
    args: argparse.Namespace,
    s3: S3Emulator | None = None,
    *,
    keep: bool = False,
) -> Figure:
    """byob via its CLI: one connection + one `transfers run` per tenant of the scope. `keep`
    leaves a local run's files for the upload floor."""
    scope_tenants = [LARGEST_TENANT] if scope == "largest" else tenants(args.tenants)
    if s3 is None:
        out = byob_local_out(args, scope)
        destination = Destination("local", out_dir=out)
    else:
        # A fresh bucket per scope, so counting the bucket counts this run only.
        bucket = s3.create_bucket(f"byob-bench-{scope}")
        destination = Destination("s3", endpoint_url=s3.endpoint_url, bucket=bucket, env=s3.env())
    figure = Figure(label, scope, shape.name)
    try:
        byob = Byob(args.work_dir, args.pg_url, destination, shape)
        run = byob.export(scope_tenants, args.timeout)
    except TimeoutError as exc:
        figure.status, figure.detail["error"] = "timeout", str(exc)
        return figure
    except (RuntimeError, ValueError, OSError) as exc:
        figure.status, figure.detail["error"] = "error", str(exc)[-3000:]
        return figure
    figure.seconds, figure.peak_rss_mb = run.seconds, run.peak_rss_mb
    figure.detail = {
        "runs": run.runs,
        "reported_rows": run.reported_rows,
        "reported_bytes": run.reported_bytes,
    }
    if s3 is None:
        figure.record_output(local_output(out))
        if not (args.keep_outputs or keep):
            shutil.rmtree(out, ignore_errors=True)
    else:
        figure.record_output(s3_output(s3.endpoint_url, destination.bucket))
    return figure


def run_upload_floor(scope: str, shape: Shape, args: argparse.Namespace, s3: S3Emulator) -> Figure:
    """boto3 uploading what byob's local run of the scope wrote, in its own process; its
    seconds are the uploads alone (bench/upload_floor.py says why)."""
    src = byob_local_out(args, scope)
    figure = Figure(UPLOAD_FLOOR, scope, shape.name)
    if not src.is_dir() or not any(src.rglob("*.parquet")):
        figure.status, figure.detail["error"] = "error", f"no byob local output in {src}"
        return figure
    bucket = s3.create_bucket(f"upload-floor-{scope}")
    result_file = args.work_dir / "out" / f"{UPLOAD_FLOOR}-{scope}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH_DIR / "upload_floor.py"), "--endpoint-url", s3.endpoint_url]
    cmd += ["--bucket", bucket, "--src", str(src), "--result", str(result_file)]
    cmd += ["--connections", str(BENCH_CONNECTIONS[scope])]
    measured = run_measured(cmd, env=dict(os.environ, **s3.env()), timeout=args.timeout)
    figure.peak_rss_mb = measured.peak_rss_mb
    if measured.timed_out:
        figure.status, figure.detail["error"] = "timeout", f"killed after {args.timeout:.0f}s"
    elif measured.returncode != 0:
        figure.status, figure.detail["stderr"] = "error", measured.stderr[-3000:]
    else:
        figure.detail = json.loads(result_file.read_text()) | {"wall_seconds": measured.seconds}
        figure.seconds = figure.detail["inner_seconds"]
        figure.record_output(s3_output(s3.endpoint_url, bucket))
    if not args.keep_outputs:
        shutil.rmtree(src, ignore_errors=True)
    return figure


# ---------------------------------------------------------------------------------------------
# Orchestration


def settle_and_warm(pg_url: str, table: str) -> None:
    """Start every run from the same state: nothing left to flush, the table in page cache.

    A fresh build leaves ~1 GB of dirty pages that the checkpointer would otherwise write out
    over the next minutes, in the middle of the first contenders (doubling some timings).
    """
    with psycopg.connect(pg_url, autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            console.log("[yellow]no privilege to CHECKPOINT; timings may include flushes[/yellow]")
        # Whole rows, so the heap is read (a bare count(*) may scan only an index).
        conn.execute(f"SELECT count(*), sum(pg_column_size(t.*)) FROM {table} t").fetchone()


def run_all(args: argparse.Namespace, shape: Shape, expected: dict[str, int]) -> list[Figure]:
    """Every selected contender on both scopes, largest tenant first, `--repeat` rounds.

    Whole rounds are repeated (rather than each contender back to back) so that a slow spell
    of the machine is spread over contenders instead of landing on one.
    """
    children = [*FLOORS, *([] if args.skip_naive else [NAIVE])]
    children += [] if args.skip_dlt else ["dlt"]
    use_s3 = not (args.skip_byob or args.skip_s3)
    rounds: list[list[Figure]] = []
    with S3Emulator() if use_s3 else contextlib.nullcontext() as s3:
        for round_no in range(args.repeat):
            if args.repeat > 1:
                console.log(f"round {round_no + 1} of {args.repeat}")
            figures: list[Figure] = []
            for scope in args.scopes:
                runs = [partial(run_child_contender, name, scope, shape, args) for name in children]
                if not args.skip_byob:
                    runs.append(partial(run_byob, BYOB_LOCAL, scope, shape, args, keep=use_s3))
                if use_s3:
                    runs.append(partial(run_upload_floor, scope, shape, args, s3))
                    runs.append(partial(run_byob, BYOB_S3, scope, shape, args, s3=s3))
                for run in runs:
                    figure = run()
                    figure.expected_rows = expected[scope]
                    figures.append(_announce(figure))
            rounds.append(figures)
    return [best_of(list(runs)) for runs in zip(*rounds, strict=True)]


def best_of(runs: list[Figure]) -> Figure:
    """The fastest run of one contender and scope — or its first failure, which must show."""
    failed = [f for f in runs if not f.ok]
    best = failed[0] if failed else min(runs, key=lambda f: f.seconds or float("inf"))
    if len(runs) > 1:
        best.detail["seconds_all_rounds"] = [f.seconds for f in runs]
        best.detail["peak_rss_mb_all_rounds"] = [f.peak_rss_mb for f in runs]
    return best


def _announce(figure: Figure) -> Figure:
    if figure.ok:
        console.log(
            f"{figure.shape:<10} {figure.contender:<17} {SCOPES[figure.scope]:<15} "
            f"{figure.rows:>10,} rows {figure.seconds:8.2f}s  {figure.peak_rss_mb or 0:7.1f} MB"
        )
    else:
        console.log(
            f"[red]{figure.shape} {figure.contender} {SCOPES[figure.scope]}: {figure.status}[/red]"
        )
    return figure


# ---------------------------------------------------------------------------------------------
# Checks, ratios and reporting


def row_mismatches(figures: list[Figure]) -> list[str]:
    """Contenders that finished but did not write exactly the scope's rows."""
    return [
        f"{f.shape} {f.contender} / {SCOPES[f.scope]}: wrote {f.rows:,} rows, "
        f"expected {f.expected_rows:,}"
        for f in figures
        if f.ok and f.rows != f.expected_rows
    ]


def _find(figures: list[Figure], contender: str, scope: str, shape: str) -> Figure | None:
    for f in figures:
        if f.contender == contender and f.scope == scope and f.shape == shape and f.ok:
            return f
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(figures: list[Figure]) -> list[dict]:
    """The headline comparisons, each with byob's target where it has one, shape by shape."""
    out: list[dict] = []
    for shape in dict.fromkeys(f.shape for f in figures):
        out += _shape_ratios([f for f in figures if f.shape == shape], shape)
    return out


def _shape_ratios(figures: list[Figure], shape: str) -> list[dict]:
    out: list[dict] = []

    def add(name: str, value: float | None, target: str = "", met=None) -> None:
        """`met` is a predicate on value; left blank when the value could not be computed."""
        ok = None if value is None or met is None else met(value)
        out.append({"name": name, "shape": shape, "value": value, "target": target, "met": ok})

    def seconds(contender: str, scope: str) -> float | None:
        figure = _find(figures, contender, scope, shape)
        return figure.seconds if figure else None

    def rows_per_s(contender: str, scope: str) -> float | None:
        figure = _find(figures, contender, scope, shape)
        return figure.rows_per_s if figure else None

    # invoices keeps its original ratio names; other shapes say which they are.
    prefix = "" if shape == INVOICES.name else f"{shape}, "
    vs_floor = TARGET_VS_FLOOR if shape == INVOICES.name else TARGET_VS_FLOOR_SHAPES
    for scope, scope_label in SCOPES.items():
        if not any(f.scope == scope for f in figures):
            continue  # scope not run (--scope)
        label = prefix + scope_label
        add(
            f"floor overlapped speedup over serial ({label})",
            _ratio(seconds("floor-serial", scope), seconds("floor-overlapped", scope)),
        )
        for byob in (BYOB_LOCAL, BYOB_S3):
            figure = _find(figures, byob, scope, shape)
            if figure is None:
                continue
            # Speed is held to its targets writing local files, like the floors and dlt; to
            # the emulator it is reported only (moto's own speed dominates). Memory is held to
            # its targets either way.
            timed = byob == BYOB_LOCAL
            add(
                f"{byob} rows/s ÷ dlt rows/s ({label})",
                _ratio(figure.rows_per_s, rows_per_s("dlt", scope)),
                f"≥ {TARGET_VS_DLT}" if timed else "reported",
                (lambda v: v >= TARGET_VS_DLT) if timed else None,
            )
            add(
                f"{byob} time ÷ overlapped floor time ({label})",
                _ratio(figure.seconds, seconds("floor-overlapped", scope)),
                f"≤ {vs_floor}" if timed else "reported",
                (lambda v: v <= vs_floor) if timed else None,
            )
            if timed and seconds(NAIVE, scope) is not None:
                add(
                    f"{byob} time ÷ naive loop time ({label})",
                    _ratio(figure.seconds, seconds(NAIVE, scope)),
                    f"≤ {TARGET_VS_NAIVE}",
                    lambda v: v <= TARGET_VS_NAIVE,
                )
            add(
                f"{byob} peak RSS MB ({label})",
                figure.peak_rss_mb,
                f"< {TARGET_RSS_MB:.0f}",
                lambda v: v < TARGET_RSS_MB,
            )
        if any(f.scope == scope and f.contender == UPLOAD_FLOOR for f in figures):
            # What uploading as it encodes costs byob beyond writing locally, then uploading.
            local, upload = seconds(BYOB_LOCAL, scope), seconds(UPLOAD_FLOOR, scope)
            add(
                f"{BYOB_S3} time ÷ (byob time + upload floor time) ({label})",
                _ratio(seconds(BYOB_S3, scope), local + upload if local and upload else None),
                f"≤ {TARGET_S3_VS_UPLOAD_FLOOR}",
                lambda v: v <= TARGET_S3_VS_UPLOAD_FLOOR,
            )
    for byob in (BYOB_LOCAL, BYOB_S3):
        small = _find(figures, byob, "largest", shape)
        big = _find(figures, byob, "all", shape)
        if small and big:
            add(
                f"{byob} all-tenant peak RSS ÷ largest-tenant peak RSS"
                + (f" ({shape})" if prefix else ""),
                _ratio(big.peak_rss_mb, small.peak_rss_mb),
                f"≤ {TARGET_RSS_GROWTH}",
                lambda v: v <= TARGET_RSS_GROWTH,
            )
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_report(figures: list[Figure], ratio_rows: list[dict]) -> None:
    table = Table(title="PostgreSQL → Parquet transfer")
    for column, justify in [
        ("shape", "left"),
        ("contender", "left"),
        ("scope", "left"),
        ("rows", "right"),
        ("seconds", "right"),
        ("rows/s", "right"),
        ("MB/s", "right"),
        ("peak RSS MB", "right"),
        ("files", "right"),
        ("status", "left"),
    ]:
        table.add_column(column, justify=justify)
    for f in figures:
        table.add_row(
            f.shape,
            f.contender,
            SCOPES[f.scope],
            _fmt(f.rows, ","),
            _fmt(f.seconds, ".2f"),
            _fmt(f.rows_per_s, ",.0f"),
            _fmt(f.mb_per_s, ".1f"),
            _fmt(f.peak_rss_mb, ".0f"),
            _fmt(f.files, ","),
            f.status if f.ok else f"[red]{f.status}[/red]",
        )
    console.print(table)

    summary = Table(title="Ratios")
    for column in ("ratio", "value", "target", "met"):
        summary.add_column(column)
    for r in ratio_rows:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[r["met"]]
        summary.add_row(r["name"], _fmt(r["value"], ".2f"), r["target"], met)
    console.print(summary)
    for f in figures:
        if not f.ok:
            console.print(
                f"[red]{f.shape} {f.contender} / {SCOPES[f.scope]} {f.status}:[/red]",
                f.detail.get("error") or f.detail.get("stderr", ""),
            )


def write_results(path: Path, args, dataset: Dataset, figures, ratio_rows, errors) -> None:
    path.write_text(
        json.dumps(
            {
                "dataset": {
                    "rows": dataset.rows,
                    "tenant_share": dataset.tenant_share,
                    "layout": dataset.layout,
                    "tenants": dataset.tenants,
                    "largest_tenant": LARGEST_TENANT,
                    "shapes": [shape.name for shape in args.shapes],
                },
                "cpus": os.cpu_count(),
                "timeout_seconds": args.timeout,
                "repeat": args.repeat,
                "floor_inline_tenant": args.floor_inline_tenant,
                "figures": [f.as_json() for f in figures],
                "ratios": ratio_rows,
                "row_mismatches": errors,
            },
            indent=2,
        )
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PostgreSQL → Parquet transfer benchmark")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BYOB_BENCH_PG_URL"),
        help="PostgreSQL URL (default: $BYOB_BENCH_PG_URL)",
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument(
        "--tenants", type=int, default=200, help="tenants in the dataset (the first is large)"
    )
    parser.add_argument(
        "--tenant-share",
        type=float,
        default=0.2,
        help="share of all rows held by the largest tenant",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="interleaved",
        help="how tenants' rows lie in the heap (see bench/dataset.py)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "byob-bench")
    parser.add_argument(
        "--scope",
        choices=("largest", "all", "both"),
        default="both",
        help="largest tenant only, all tenants only, or both (default)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every contender; the fastest run of each is reported",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed per contender and scope"
    )
    parser.add_argument(
        "--floor-inline-tenant",
        action="store_true",
        help="floors put the tenant in the SQL as a literal (ADBC streams via COPY) instead of "
        "binding it (ADBC buffers the whole result); see bench/README.md",
    )
    parser.add_argument(
        "--shape",
        choices=[*SHAPES, "all"],
        default=INVOICES.name,
        help="table shape (bench/shapes.py); `all` runs each in turn (default: invoices)",
    )
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-byob", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument(
        "--keep-outputs",
        action="store_true",
        help="keep the written Parquet files (default: delete once counted)",
    )
    args = parser.parse_args(argv)
    if not args.pg_url:
        parser.error("--pg-url or BYOB_BENCH_PG_URL is required")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not 0 < args.tenant_share < 1:
        parser.error("--tenant-share must be between 0 and 1")
    if not 2 <= args.tenants <= 1000:
        parser.error("--tenants must be between 2 and 1000")
    args.work_dir = args.work_dir.resolve()
    args.scopes = list(SCOPES) if args.scope == "both" else [args.scope]
    args.shapes = list(SHAPES.values()) if args.shape == "all" else [SHAPES[args.shape]]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    for shape in args.shapes:
        dataset = Dataset(
            rows=args.rows,
            tenant_share=args.tenant_share,
            layout=args.layout,
            tenants=args.tenants,
            shape=shape,
        )
        ensure_dataset(args.pg_url, dataset, log=console.log)
        counts = tenant_row_counts(args.pg_url, shape.table)
        expected = {"largest": counts.get(LARGEST_TENANT, 0), "all": sum(counts.values())}
        console.log(
            f"{shape.name}: {expected['all']:,} rows, {len(counts)} tenants; "
            f"{LARGEST_TENANT} holds {expected['largest']:,}"
        )
        settle_and_warm(args.pg_url, shape.table)
        figures += run_all(args, shape, expected)
    errors = row_mismatches(figures)
    ratio_rows = ratios(figures)
    print_report(figures, ratio_rows)
    results = args.work_dir / "results.json"
    write_results(results, args, dataset, figures, ratio_rows, errors)
    console.log(f"figures written to {results}")

    if errors:
        console.print(
            "[bold red]ROW COUNT MISMATCH[/bold red] — contenders disagree with the source:"
        )
        for line in errors:
            console.print(f"  [red]{line}[/red]")
        return 2
    if any(not f.ok for f in figures):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
