"""How fast one scheduler tick dispatches many due connections to the distributed queue.

N active export connections (one model each, a 15-minute schedule, never dispatched) are
inserted in bulk straight into a fresh PostgreSQL state store — the benchmark measures
dispatch, not onboarding — and one `Scheduler.tick()` claims every slot and defers every
transfer job to Procrastinate. A second tick must dispatch nothing (a slot runs once), and the
queue must hold exactly one job per connection.

    python bench/dispatch_bench.py --pg-url URL [--connections 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from byob.container import Byob  # noqa: E402
from byob.services import Services  # noqa: E402
from byob.settings import load_settings  # noqa: E402
from byob.workers import queue as q  # noqa: E402
from byob.workers.scheduler import Scheduler  # noqa: E402


def fresh_database(server_url: str) -> str:
    name = f"dbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def insert_connections(byob: Byob, n: int, out: Path) -> None:
    """N active connections in bulk (SQLAlchemy's batched multi-row INSERT)."""
    from byob.domain.connections import new_connection
    from byob.store import tables as T
    from byob.store.connections import connection_row
    from byob.store.repository import new_id

    now = byob.clock()
    rows = [
        connection_row(
            new_connection(
                id=new_id(), name=f"c{i}", tenant=f"t{i}", type="local", path=str(out), now=now
            )
        )
        | {"status": "active", "frequency_minutes": 15}
        for i in range(n)
    ]
    with byob.db.begin() as db:
        for start in range(0, n, 5000):
            db.execute(T.connections.insert(), rows[start : start + 5000])


def one_round(server_url: str, n: int, work: Path) -> dict[str, float | int]:
    state_url = fresh_database(server_url)
    try:
        home = work / f"n{n}"
        home.mkdir(parents=True)
        config = home / "byob.toml"
        # The scheduler never reads the source: the models file only has to name a model.
        config.write_text(
            f'[source]\nurl = "sqlite:///{home / "source.sqlite"}"\n[[models]]\nname = "tiny"\n'
            'table = "tiny"\ntenant_column = "tenant_id"\ncursor_column = "updated_at"\n'
            'primary_key = ["id"]\n'
        )
        settings = load_settings(
            home=home / ".byob",
            config=config,
            database_url=state_url,
            secret_key=secrets.token_urlsafe(32),
            signing_key=secrets.token_urlsafe(32),
        )
        byob = Byob(settings)
        byob.migrate()
        started = time.perf_counter()
        insert_connections(byob, n, home / "out")
        with psycopg.connect(state_url, autocommit=True) as db:
            db.execute("VACUUM ANALYZE connections")
        inserted = time.perf_counter() - started
        services = Services(byob)
        jobs = q.make_queue(state_url)
        q.ensure_schema(jobs, byob.state)
        services.transfers.dispatcher = dispatcher = q.QueueDispatcher(services, jobs)
        try:
            # A fixed clock: a tick that runs across a slot boundary must not find the next slot.
            now = byob.clock()
            scheduler = Scheduler(services, clock=lambda: now)
            start = time.perf_counter()
            dispatched = scheduler.tick()
            seconds = time.perf_counter() - start
            assert len(dispatched) == n, len(dispatched)
            assert scheduler.tick() == []  # the same slot never twice
        finally:
            dispatcher.shutdown()
            byob.close()
        with psycopg.connect(state_url) as db:
            jobs_queued, distinct_locks = db.execute(
                "SELECT count(*), count(DISTINCT queueing_lock) FROM procrastinate_jobs "
                "WHERE queue_name = %s",
                (q.QUEUE,),
            ).fetchone() or (0, 0)
        assert jobs_queued == distinct_locks == n, (jobs_queued, distinct_locks)
        return {
            "connections": n,
            "seconds": round(seconds, 2),
            "per_second": round(n / seconds, 1),
            "insert_seconds": round(inserted, 1),
        }
    finally:
        drop_database(server_url, state_url)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", default=os.environ.get("BYOB_BENCH_PG_URL", ""))
    parser.add_argument("--connections", default="10000,100000")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "byob-dispatch-bench"
    )
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("--pg-url or BYOB_BENCH_PG_URL is required")
    work = args.work_dir / uuid.uuid4().hex[:8]
    results = []
    for n in (int(x) for x in args.connections.split(",")):
        result = one_round(args.pg_url, n, work)
        results.append(result)
        print(
            f"{n:>7,} connections dispatched in one tick: {result['seconds']:.2f} s "
            f"({result['per_second']:,.0f}/s)",
            flush=True,
        )
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"figures in {work / 'results.json'}")


if __name__ == "__main__":
    main()
