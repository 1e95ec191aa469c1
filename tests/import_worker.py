"""One import run (engine level: run_import + S3ImportObjects + PostgresImportTarget) in a
process of its own, for the tests that measure it from outside or kill it with SIGKILL:

    python -m tests.import_worker --pg-url URL --endpoint URL --bucket B [--prefix in/]
        [--connection c1] [--tenant acme]

AWS credentials come from the environment (the customer's, as the read-only role's would).
Prints the run's outcome as one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from byob.demo.emulator import CustomerAccount
from byob.domain.imports import ImportFormat, ImportSpec, import_column

ROOT = Path(__file__).resolve().parents[1]
USAGE = ImportSpec(
    name="usage_events",
    table="usage_events",
    tenant_column="tenant_id",
    format=ImportFormat.CSV,
    columns=(
        import_column("account", "text"),
        import_column("quantity", "numeric(18,6)"),
        import_column("occurred_at", "timestamptz"),
    ),
    key_pattern="**.csv*",
)
USAGE_DDL = (
    "CREATE TABLE usage_events (tenant_id text NOT NULL, account text, "
    "quantity numeric(18,6), occurred_at timestamptz NOT NULL)"
)
USAGE_HEADER = b"account,quantity,occurred_at\n"


def command(pg_url: str, endpoint: str, bucket: str, *more: str) -> list[str]:
    """The argv that runs this module in a fresh interpreter."""
    return [
        *(sys.executable, "-m", "tests.import_worker"),
        *("--pg-url", pg_url, "--endpoint", endpoint, "--bucket", bucket, *more),
    ]


def customer_env(customer: CustomerAccount) -> dict[str, str]:
    """This environment with the customer's credentials, for the child's boto3."""
    credentials = customer.credentials()
    return dict(
        os.environ,
        AWS_ACCESS_KEY_ID=credentials["key"],
        AWS_SECRET_ACCESS_KEY=credentials["secret"],
        AWS_SESSION_TOKEN=credentials["token"],
    )


def start(pg_url: str, endpoint: str, bucket: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(pg_url, endpoint, bucket),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def peak_rss_mb(cmd: list[str], *, env: dict[str, str], out: Path, err: Path) -> tuple[int, float]:
    """Run ``cmd`` (stdout and stderr to files): its exit code and the kernel's peak RSS of
    it alone, in MB. The process is started by a small launcher, as GNU time does it: a
    child's ru_maxrss counts the RSS of the process it was forked from until it execs, and
    this one (pytest, the moto server's host) is larger than the budget being checked."""
    launcher = (
        "import os, subprocess, sys\n"
        "with open(sys.argv[1], 'wb') as o, open(sys.argv[2], 'wb') as e:\n"
        "    child = subprocess.Popen(sys.argv[4:], stdout=o, stderr=e)\n"
        "    _, status, usage = os.wait4(child.pid, 0)\n"
        "open(sys.argv[3], 'w').write(str(usage.ru_maxrss))\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    rss = out.with_suffix(".rss")
    done = subprocess.run(
        [sys.executable, "-c", launcher, str(out), str(err), str(rss), *cmd],
        cwd=ROOT,
        env=env,
        check=False,
    )
    return done.returncode, int(rss.read_text()) / 1024  # ru_maxrss: KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="in/")
    parser.add_argument("--connection", default="c1")
    parser.add_argument("--tenant", default="acme")
    args = parser.parse_args(argv)

    import boto3

    from byob.aws.import_objects import S3ImportObjects
    from byob.engine.importer import run_import
    from byob.sources.import_target import PostgresImportTarget

    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1")
    objects = S3ImportObjects(s3, args.bucket, region="us-east-1", who="the role")
    run = run_import(
        USAGE,
        objects,
        PostgresImportTarget(args.pg_url),
        connection_id=args.connection,
        tenant=args.tenant,
        prefix=args.prefix,
    )
    print(json.dumps(asdict(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
