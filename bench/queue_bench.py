"""Throughput of byob's scheduler and distributed queue with many connections.

10,000 connections (local destinations; each transfer moves a handful of rows) in a
PostgreSQL state store. Measures, in one run:
- the scheduler: one tick that claims every connection's slot and defers its transfer job
  (dispatches per second);
- the workers: `byob worker` processes (1, 2 and 4, one transfer at a time each) draining
  the queue for a fixed time (jobs per second, and the overhead per transfer);
- the floor beside them: the same number of connections read and written by the engine in
  one process with no queue (transfers per second), to show what the queue adds;
- small transfers: the time of one incremental of 0, 1, 10 and 100 new rows, to a local
  directory and to S3 (an in-process emulator), and how much of it is byob's own
  (bench/small_transfers.py).

    python bench/queue_bench.py --pg-url URL [--connections 10000] [--seconds 40]
        [--small-transfers 30]   # connections per destination; 0 skips the section
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import small_transfers  # noqa: E402

from byob.container import Byob  # noqa: E402
from byob.services import Services  # noqa: E402
from byob.settings import load_settings  # noqa: E402
from byob.workers import queue as q  # noqa: E402
from byob.workers.scheduler import Scheduler  # noqa: E402

console = Console()


def fresh_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def build_source(url: str, tenants: int, rows_per_tenant: int) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "CREATE TABLE tiny (id bigint PRIMARY KEY, tenant_id text NOT NULL, amount numeric(18,2), "
            "updated_at timestamptz NOT NULL)"
        )
        db.execute(
            "INSERT INTO tiny SELECT i, 't' || (i %% %s), (i %% 1000) / 10.0, now() - interval '1 hour' "
            "FROM generate_series(1, %s) AS i",
            (tenants, tenants * rows_per_tenant),
        )
        db.execute("CREATE INDEX ON tiny (tenant_id, updated_at)")
        db.execute("ANALYZE tiny")


def build_connections(byob: Byob, state_url: str, tenants: int, out: Path) -> None:
    """Connections inserted in bulk as active: the benchmark measures scheduling and
    running, not onboarding."""
    from byob.domain.connections import new_connection
    from byob.store import tables as T
    from byob.store.connections import connection_row
    from byob.store.repository import new_id

    now = byob.clock()
    rows = []
    for i in range(tenants):
        conn = new_connection(
            id=new_id(),
            name=f"c{i}",
            tenant=f"t{i}",
            type="local",
            path=str(out / f"t{i}"),
            now=now,
        )
        rows.append(connection_row(conn) | {"status": "active", "frequency_minutes": 15})
    with byob.db.begin() as db:
        for start in range(0, len(rows), 1000):
            db.execute(T.connections.insert(), rows[start : start + 1000])


def reset_slots(state_url: str) -> None:
    with psycopg.connect(state_url, autocommit=True) as db:
        db.execute("UPDATE connections SET last_slot = NULL")
        db.execute("DELETE FROM procrastinate_jobs")


def count_done(state_url: str) -> int:
    with psycopg.connect(state_url) as db:
        return db.execute("SELECT count(*) FROM transfers WHERE status = 'succeeded'").fetchone()[0]


def run_workers(
    env: dict[str, str], n: int, seconds: float, state_url: str, log_dir: Path
) -> tuple[int, float]:
    before = count_done(state_url)
    logs = [open(log_dir / f"worker-{n}-{i}.log", "w") for i in range(n)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "byob.cli", "worker", "--concurrency", "1"],
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(n)
    ]
    # Count from the first finished job, so process start-up is not charged to throughput.
    deadline = time.monotonic() + 120
    while count_done(state_url) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    start_count, start = count_done(state_url), time.monotonic()
    time.sleep(seconds)
    done, elapsed = count_done(state_url) - start_count, time.monotonic() - start
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=120)
    for log in logs:
        log.close()
    return done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", default=os.environ.get("BYOB_BENCH_PG_URL", ""))
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rows-per-tenant", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--workers", default="1,2,4", help="worker counts; empty skips them")
    parser.add_argument(
        "--small-transfers",
        type=int,
        default=30,
        metavar="N",
        help="small transfers: connections per destination, each transferring once per row "
        "count (0 skips the section)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "byob-queue-bench"
    )
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("--pg-url or BYOB_BENCH_PG_URL is required")
    work = args.work_dir / uuid.uuid4().hex[:8]
    work.mkdir(parents=True)
    source_url = fresh_database(args.pg_url, "qbench_source")
    state_url = fresh_database(args.pg_url, "qbench_state")
    console.print(f"building {args.connections:,} tenants × {args.rows_per_tenant} rows …")
    build_source(source_url, args.connections, args.rows_per_tenant)
    config = work / "byob.toml"
    config.write_text(
        f'[source]\nurl = "{source_url}"\n[[models]]\nname = "tiny"\ntable = "tiny"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\nprimary_key = ["id"]\n'
    )
    settings_options = {
        "home": work / ".byob",
        "config": config,
        "database_url": state_url,
        "settle_lag_seconds": 0,
        "secret_key": secrets.token_urlsafe(32),  # a PostgreSQL state store needs a shared key
        "signing_key": secrets.token_urlsafe(32),
    }
    settings = load_settings(**settings_options)
    byob = Byob(settings)
    byob.migrate()
    build_connections(byob, state_url, args.connections, work / "out")
    services = Services(byob)
    jobs = q.make_queue(state_url)
    q.ensure_schema(jobs, byob.state)

    results: dict[str, object] = {"connections": args.connections}
    # The scheduler: claim every slot and defer every job, in one tick.
    services.transfers.dispatcher = dispatcher = q.QueueDispatcher(services, jobs)
    scheduler = Scheduler(services)
    start = time.perf_counter()
    dispatched = scheduler.tick()
    tick_seconds = time.perf_counter() - start
    assert len(dispatched) == args.connections, len(dispatched)
    assert scheduler.tick() == []  # the same slot never twice
    results["scheduler"] = {
        "dispatched": len(dispatched),
        "seconds": round(tick_seconds, 2),
        "per_second": round(len(dispatched) / tick_seconds, 1),
    }

    env = dict(os.environ) | {
        "BYOB_HOME": str(work / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_DATABASE_URL": state_url,
        "BYOB_SECRET_KEY": settings.secret_key,
        "BYOB_SIGNING_KEY": settings.signing_key,
        "BYOB_SETTLE_LAG_SECONDS": "0",
        "BYOB_LOG_JSON": "true",
    }
    table = Table(
        "workers",
        "jobs done",
        "seconds",
        "jobs/s",
        "per transfer (ms, per worker)",
        title="byob worker throughput",
    )
    results["workers"] = {}
    for n in [int(x) for x in args.workers.split(",") if x.strip()]:
        done, elapsed = run_workers(env, n, args.seconds, state_url, work)
        rate = done / elapsed
        results["workers"][n] = {
            "jobs": done,
            "seconds": round(elapsed, 1),
            "jobs_per_second": round(rate, 1),  # type: ignore[index]
            "ms_per_transfer_per_worker": round(1000 * n / rate, 1) if rate else None,
        }
        table.add_row(
            str(n),
            f"{done:,}",
            f"{elapsed:.1f}",
            f"{rate:.1f}",
            f"{1000 * n / rate:.0f}" if rate else "-",
        )
        # Requeue for the next worker count: every connection runs again.
        dispatcher.shutdown()
        jobs = q.make_queue(state_url)
        reset_slots(state_url)
        services.transfers.dispatcher = dispatcher = q.QueueDispatcher(services, jobs)
        Scheduler(services).tick()
    dispatcher.shutdown()

    # The floor: the same transfers in one process, no queue, no worker.
    names = [f"c{i}" for i in range(min(args.connections, 500))]
    start = time.perf_counter()
    for name in names:
        services.transfers.run(name, actor="bench")
    floor = len(names) / (time.perf_counter() - start)
    results["in_process_floor_transfers_per_second"] = round(floor, 1)

    console.print(
        f"scheduler: {len(dispatched):,} connections dispatched in {tick_seconds:.2f} s "
        f"({len(dispatched) / tick_seconds:,.0f}/s)"
    )
    console.print(table)
    console.print(f"in-process floor (no queue): {floor:.1f} transfers/s on one thread")
    if args.small_transfers > 0:
        results["small_transfers"] = figures = small_transfers.measure(
            settings_options,
            source_url,
            work / "small-out",
            connections=args.small_transfers,
            log=console.print,
        )
        console.print(small_transfers.table(figures))
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    console.print(f"figures in {work / 'results.json'}")
    byob.close()


if __name__ == "__main__":
    main()
