"""Import benchmark: CSV files in S3 → a PostgreSQL table, byob against a floor.

    python bench/import_bench.py --pg-url URL [--rows-per-file 1000000] [--files 10]
        [--work-dir DIR] [--timeout 600]

The files (account text, quantity numeric(18,6), occurred_at timestamptz; every other one
gzipped) are generated once into the work dir and uploaded to an in-process S3 emulator
(moto). Contenders, each in its own subprocess so that its peak RSS is its own:

  floor  per object: boto3 download_file to a temporary file (what `aws s3 cp` does), then
         psycopg `COPY … FROM STDIN (FORMAT csv, HEADER)` of it (through gzip for .gz), one
         transaction per file; the tenant comes from the column's DEFAULT. No checks, no ledger.
  byob   run_import (engine level): S3ImportObjects streaming each object, every value
         checked against its declared type, rows and ledger row in one transaction per file.

Figures: wall seconds around the child, rows/s, MB/s of CSV (uncompressed), peak RSS; the
rows are counted in the table after each contender, never taken from its report. Exit 2 when
a contender fails or loads other than every row once.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from measure import run_measured  # noqa: E402
from outputs import EMULATOR_CREDENTIALS, S3Emulator  # noqa: E402

TABLE = "import_bench_usage"
TENANT = "acme"
PREFIX = "in/"
HEADER = b"account,quantity,occurred_at\n"
CONTENDERS = ("floor", "byob")
TARGET_VS_FLOOR = 1.2  # byob seconds ÷ floor seconds, at most
TARGET_RSS_MB = 300.0  # byob peak RSS, below


# --- the files ----------------------------------------------------------------------------------


def file_name(number: int) -> str:
    return f"usage-{number:03d}.csv" + (".gz" if number % 2 else "")


def generate(work: Path, rows: int, files: int) -> tuple[list[Path], int]:
    """The files (reused when already generated at this size) and their uncompressed bytes."""
    folder = work / f"files-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    paths, csv_bytes = [], 0
    for number in range(files):
        path = folder / file_name(number)
        size = path.with_name(path.name + ".csv-bytes")
        if not size.exists():
            body = _csv(number, rows)
            path.write_bytes(gzip.compress(body, 6) if number % 2 else body)
            size.write_text(str(len(body)))  # last: the file is whole once this exists
        csv_bytes += int(size.read_text())
        paths.append(path)
    return paths, csv_bytes


def _csv(number: int, rows: int) -> bytes:
    rng = random.Random(number)
    accounts = [f"acct-{rng.randrange(10**6):06d}" for _ in range(1000)]
    lines = [
        f"{accounts[i % 1000]},{rng.randrange(10**7)}.{rng.randrange(10**6):06d},"
        f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z\n"
        for i in range(rows)
    ]
    return HEADER + "".join(lines).encode()


def reset_table(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.execute(
            f"CREATE TABLE {TABLE} (tenant_id text NOT NULL DEFAULT '{TENANT}', account text, "
            "quantity numeric(18,6), occurred_at timestamptz NOT NULL)"
        )
        db.execute("DELETE FROM byob_import_ledger WHERE connection_id = 'bench'")
        db.execute("CHECKPOINT")


def counted(pg_url: str) -> tuple[int, int]:
    """Rows in the table, and those of another tenant than the bench's."""
    with psycopg.connect(pg_url) as db:
        row = db.execute(
            f"SELECT count(*), count(*) FILTER (WHERE tenant_id <> %s) FROM {TABLE}", (TENANT,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# --- contenders (in the child) ------------------------------------------------------------------


def s3_client(endpoint: str) -> object:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def run_floor(pg_url: str, endpoint: str, bucket: str) -> None:
    s3 = s3_client(endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX)["Contents"]]
    copy_sql = f"COPY {TABLE} (account, quantity, occurred_at) FROM STDIN (FORMAT csv, HEADER)"
    with psycopg.connect(pg_url, autocommit=True) as db, tempfile.TemporaryDirectory() as scratch:
        for key in keys:
            local = Path(scratch) / "object"
            s3.download_file(bucket, key, str(local))
            opener = gzip.open if key.endswith(".gz") else open
            with (
                opener(local, "rb") as source,
                db.transaction(),
                db.cursor() as cur,
                cur.copy(copy_sql) as copy,
            ):
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            local.unlink()


def run_byob(pg_url: str, endpoint: str, bucket: str) -> None:
    from byob.aws.import_objects import S3ImportObjects
    from byob.domain.imports import ImportFormat, ImportSpec, import_column
    from byob.engine.importer import run_import
    from byob.sources.import_target import PostgresImportTarget

    spec = ImportSpec(
        name="usage",
        table=TABLE,
        tenant_column="tenant_id",
        format=ImportFormat.CSV,
        columns=(
            import_column("account", "text"),
            import_column("quantity", "numeric(18,6)"),
            import_column("occurred_at", "timestamptz"),
        ),
    )
    objects = S3ImportObjects(s3_client(endpoint), bucket, region="us-east-1", who="the bench")
    run = run_import(
        spec,
        objects,
        PostgresImportTarget(pg_url),
        connection_id="bench",
        tenant=TENANT,
        prefix=PREFIX,
    )
    if run.rejected:
        raise SystemExit(f"rejected: {run.rejected[0]}")


# --- the parent ---------------------------------------------------------------------------------


@dataclass
class Figure:
    contender: str
    status: str = "ok"
    rows: int = 0
    seconds: float | None = None
    peak_rss_mb: float | None = None
    rows_per_s: float | None = None
    mb_per_s: float | None = None


def measure(
    name: str, args: argparse.Namespace, s3: S3Emulator, bucket: str, csv_bytes: int
) -> Figure:
    reset_table(args.pg_url)
    cmd = [sys.executable, __file__, "--pg-url", args.pg_url, "--child", name]
    cmd += ["--endpoint", s3.endpoint_url, "--bucket", bucket]
    measured = run_measured(cmd, timeout=args.timeout)
    figure = Figure(name, seconds=measured.seconds, peak_rss_mb=measured.peak_rss_mb)
    if measured.timed_out or measured.returncode != 0:
        figure.status = "timeout" if measured.timed_out else "error"
        print(measured.stderr[-3000:], file=sys.stderr)
        return figure
    rows, others = counted(args.pg_url)
    figure.rows = rows
    if rows != args.rows_per_file * args.files or others:
        figure.status = f"wrong rows: {rows} ({others} of another tenant)"
    figure.rows_per_s = rows / measured.seconds
    figure.mb_per_s = csv_bytes / 2**20 / measured.seconds
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("BYOB_BENCH_PG_URL"))
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "byob-bench")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.pg_url:
        parser.error("--pg-url (or $BYOB_BENCH_PG_URL) is required")
    if args.child:
        (run_floor if args.child == "floor" else run_byob)(args.pg_url, args.endpoint, args.bucket)
        return 0

    from byob.sources.import_target import PostgresImportTarget

    os.environ.update(EMULATOR_CREDENTIALS)  # for this process's uploads and the children
    PostgresImportTarget(args.pg_url).ensure_ledger()
    started = time.perf_counter()
    paths, csv_bytes = generate(args.work_dir, args.rows_per_file, args.files)
    print(
        f"{args.files} files of {args.rows_per_file:,} rows ({csv_bytes / 2**20:,.0f} MB of "
        f"CSV) ready in {time.perf_counter() - started:.1f}s"
    )
    with S3Emulator() as s3:
        bucket = s3.create_bucket("import-bench")
        client = s3_client(s3.endpoint_url)
        for path in paths:
            client.upload_file(str(path), bucket, PREFIX + path.name)
        figures = [measure(name, args, s3, bucket, csv_bytes) for name in CONTENDERS]
    with psycopg.connect(args.pg_url, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.execute("DELETE FROM byob_import_ledger WHERE connection_id = 'bench'")
    return report(figures, args)


def report(figures: list[Figure], args: argparse.Namespace) -> int:
    print(
        f"\n{'contender':<10}{'status':>8}{'rows':>12}{'seconds':>9}{'rows/s':>11}"
        f"{'MB/s':>8}{'peak RSS MB':>13}"
    )
    for f in figures:
        print(
            f"{f.contender:<10}{f.status:>8}{f.rows:>12,}{_n(f.seconds, '.1f'):>9}"
            f"{_n(f.rows_per_s, ',.0f'):>11}{_n(f.mb_per_s, '.1f'):>8}"
            f"{_n(f.peak_rss_mb, '.0f'):>13}"
        )
    floor, byob = figures
    ratio = byob.seconds / floor.seconds if byob.seconds and floor.seconds else None
    ratios = {
        "byob seconds ÷ floor seconds": (ratio, f"≤ {TARGET_VS_FLOOR}", TARGET_VS_FLOOR),
        "byob peak RSS MB": (byob.peak_rss_mb, f"< {TARGET_RSS_MB:.0f}", TARGET_RSS_MB),
    }
    print()
    for name, (value, target, bound) in ratios.items():
        met = "" if value is None else ("met" if value <= bound else "MISSED")
        print(f"{name:<30}{_n(value, '.2f'):>8}   target {target:<6} {met}")
    results = args.work_dir / "import-results.json"
    results.write_text(
        json.dumps(
            {
                "rows_per_file": args.rows_per_file,
                "files": args.files,
                "figures": [asdict(f) for f in figures],
                "ratios": {name: value for name, (value, _, _) in ratios.items()},
            },
            indent=2,
        )
    )
    print(f"\nresults: {results}")
    return 0 if all(f.status == "ok" for f in figures) else 2


def _n(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


if __name__ == "__main__":
    sys.exit(main())
