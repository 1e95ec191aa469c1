"""Child-process entry point: runs ONE contender on one scope, then exits.

Each contender runs in its own process so that its peak RSS is its own (the parent measures
it from outside, with /usr/bin/time or psutil) and so that imports, caches and allocator
state of one contender cannot help or hurt the next.

    python bench/run_contender.py {floor-serial|floor-overlapped|naive-loop|dlt} \
        --pg-url URL --scope {largest|all} --out DIR --result FILE.json [--inline-tenant]
        [--shape NAME]

The result file holds what the child knows from inside (inner seconds, files written); the
parent does not trust it for rows or bytes, which it reads back from the files themselves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import LARGEST_TENANT, tenants
from shapes import SHAPES, Shape

CONTENDERS = ("floor-serial", "floor-overlapped", "naive-loop", "dlt")


def scope_tenants(scope: str, count: int) -> list[str]:
    """The tenants a scope exports: the largest one, or all ``count`` of them."""
    return [LARGEST_TENANT] if scope == "largest" else tenants(count)


def run_floor(
    contender: str, pg_url: str, scope: str, out: Path, inline: bool, count: int, shape: Shape
) -> dict:
    """Export the scope's tenants, one Parquet file each: serially, overlapped or naively."""
    import floor

    export = {
        "floor-serial": floor.export_serial,
        "floor-overlapped": floor.export_overlapped,
        "naive-loop": floor.export_naive,
    }[contender]
    started = time.perf_counter()
    if contender == "naive-loop":  # always ADBC's streaming path: the loop at its fastest
        inline = True
    written = export(pg_url, scope_tenants(scope, count), out, inline, shape)
    return {"inner_seconds": time.perf_counter() - started, "files": written.files}


def run_dlt(pg_url: str, scope: str, out: Path, shape: Shape) -> dict:
    """Export with dlt: the largest tenant filtered, or the whole table in one load."""
    import dlt_contender

    tenant = LARGEST_TENANT if scope == "largest" else None
    return dlt_contender.export(pg_url, tenant, out, shape)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--scope", choices=("largest", "all"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--tenants", type=int, default=200, help="tenants in the dataset")
    parser.add_argument("--shape", choices=SHAPES, default="invoices")
    parser.add_argument(
        "--inline-tenant",
        action="store_true",
        help="floors: tenant as a SQL literal (ADBC's streaming COPY path), not a parameter",
    )
    args = parser.parse_args(argv)

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    shape = SHAPES[args.shape]
    if args.contender == "dlt":
        result = run_dlt(args.pg_url, args.scope, args.out, shape)
    else:
        result = run_floor(
            args.contender,
            args.pg_url,
            args.scope,
            args.out,
            args.inline_tenant,
            args.tenants,
            shape,
        )
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
