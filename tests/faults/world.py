"""The fault suite's world: a PostgreSQL cluster of its own (it gets restarted) holding the
source and the state store, the AWS emulator behind a TCP proxy that can be switched off, a
handful of tenants onboarded as S3 connections, and `byob worker` processes to kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byob.demo.emulator import LocalAws
from byob.services import Services
from byob.workers import queue as q
from tests.faults.delivery import check_delivery
from tests.faults.proxy import Proxy
from tests.support import (
    OPEN_APPS,
    TEST_SECRET_KEY,
    TEST_SIGNING_KEY,
    free_port,
    make_services,
    onboard_s3,
    pg_exec,
    wait_for,
    wait_healthy,
    write_config,
)

SCRIPTS = Path(__file__).parents[2] / "scripts"
MODEL = "events"
TUNING = {  # small files and parts: each transfer is a few multipart uploads
    "BYOB_FILE_TARGET_BYTES": str(6 << 20),
    "BYOB_MULTIPART_PART_BYTES": str(5 << 20),
    "BYOB_ROW_GROUP_BYTES": str(1 << 20),
    "BYOB_SETTLE_LAG_SECONDS": "0",
    "BYOB_AWS_MAX_ATTEMPTS": "2",
    "BYOB_LOG_JSON": "false",
}


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 that tests may stop and start."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.port = free_port()
        self.url = ""

    def start(self) -> str:
        self.url = subprocess.run(
            [SCRIPTS / "pg-cluster", "start", str(self.data), str(self.port)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return self.url

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([SCRIPTS / "pg-cluster", "stop", str(self.data)], check=True)

    def database(self, name: str) -> str:
        pg_exec(self.url, f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name


@dataclass
class World:
    root: Path
    cluster: Cluster
    aws: LocalAws
    proxy: Proxy
    source_url: str
    state_url: str
    app: Services
    tenants: list[str]
    customer: Any = None
    connections: dict[str, str] = field(default_factory=dict)  # tenant -> connection id
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    rows_per_tenant: int = 0

    # -- the source -----------------------------------------------------------------------

    def add_rows(self, per_tenant: int) -> None:
        """New rows for every tenant, ~8 MB of Parquet each per 60,000 (hard to compress)."""
        start = self.rows_per_tenant * len(self.tenants)
        count = per_tenant * len(self.tenants)
        pg_exec(
            self.source_url,
            f"INSERT INTO {MODEL} SELECT i, 't' || (i % {len(self.tenants)}), "
            "md5(random()::text) || md5(random()::text) || md5(random()::text), "
            # In the past, yet after every earlier round's high-water mark.
            f"now() - interval '1 second' + (i - {start}) * interval '1 microsecond' "
            f"FROM generate_series({start + 1}, {start + count}) AS i",
        )
        self.rows_per_tenant += per_tenant

    # -- workers and jobs -----------------------------------------------------------------

    def env(self, **settings: str) -> dict[str, str]:
        env = (
            dict(os.environ)
            | TUNING
            | {
                "BYOB_HOME": str(self.root / ".byob"),
                "BYOB_CONFIG": str(self.root / "byob.toml"),
                "BYOB_DATABASE_URL": self.state_url,
                "BYOB_SECRET_KEY": TEST_SECRET_KEY,
                "BYOB_SIGNING_KEY": TEST_SIGNING_KEY,
                "BYOB_AWS_ENDPOINT_URL": self.proxy.url,
            }
        )
        return env | {f"BYOB_{k.upper()}": v for k, v in settings.items()}

    def start_worker(
        self, name: str, *, concurrency: int = 2, **settings: str
    ) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "byob.cli",
                "worker",
                "--concurrency",
                str(concurrency),
                "--name",
                name,
            ],
            env=self.env(**settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.workers.append(worker)
        return worker

    def start_server(self) -> tuple[str, subprocess.Popen[bytes]]:
        """`byob serve` on this state store, its scheduler ticking every second."""
        port = free_port()
        log_path = self.root / "server.log"
        with log_path.open("ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "byob.cli", "serve", "--port", str(port), "--tick", "1"],
                env=self.env(public_url=f"http://127.0.0.1:{port}"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        base_url = f"http://127.0.0.1:{port}"
        self.workers.append(server)  # stopped with them should a test fail
        wait_healthy(base_url, server, log_path)
        return base_url, server

    def scheduled(self) -> bool:
        """Every connection's current slot was dispatched by a scheduler."""
        import psycopg

        with psycopg.connect(self.state_url) as db:
            row = db.execute("SELECT count(*) FROM connections WHERE last_slot IS NULL")
            return row.fetchone()[0] == 0

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def trigger_all(self) -> None:
        jobs = q.make_queue(self.state_url)
        dispatcher = q.QueueDispatcher(self.app, jobs)
        try:
            for tenant in self.tenants:
                conn = self.app.connections.get(self.connections[tenant])
                q.defer_transfer(jobs, conn, MODEL)
        finally:
            dispatcher.shutdown()

    def jobs(self, *statuses: str) -> int:
        import psycopg

        with psycopg.connect(self.state_url) as db:
            return int(
                db.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                    "AND status::text = ANY(%s)",
                    (q.QUEUE, list(statuses)),
                ).fetchone()[0]
            )

    def wait_all_done(self, *, timeout: float) -> None:
        wait_for(lambda: self.jobs("todo", "doing") == 0, timeout=timeout, what="every job to end")

    def succeeded_transfers(self) -> set[tuple[str, str]]:
        """(transfer, connection) of every transfer that succeeded so far."""
        import psycopg

        with psycopg.connect(self.state_url) as db:
            rows = db.execute("SELECT id, connection_id FROM transfers WHERE status = 'succeeded'")
            return {(tid, cid) for tid, cid in rows}

    def wait_every_connection_transferred(
        self, *, after: set[tuple[str, str]], timeout: float
    ) -> None:
        """Until every connection has a transfer that succeeded since ``after`` was taken, and
        no job waits or runs. (A scheduler claims its slots, then queues their jobs: between
        the two, every slot is taken and no job is waiting yet.)"""

        def every_one() -> bool:
            new = {cid for _, cid in self.succeeded_transfers() - after}
            return len(new) == len(self.tenants) and self.jobs("todo", "doing") == 0

        wait_for(every_one, timeout=timeout, what="every connection to transfer again")

    def uploads(self) -> set[str]:
        """The multipart uploads under way in the tenants' buckets (asked of the emulator
        directly, not through the proxy)."""
        s3 = self.customer.client("s3")
        return {
            u["UploadId"]
            for t in self.tenants
            for u in s3.list_multipart_uploads(Bucket=bucket(t)).get("Uploads", [])
        }

    def wait_new_upload(self, *, timeout: float = 120) -> None:
        """Until an upload starts that was not under way before (a killed worker's stay)."""
        before = self.uploads()
        wait_for(lambda: self.uploads() - before, timeout=timeout, what="a new multipart upload")

    # -- the checks -----------------------------------------------------------------------

    def check_delivery(self) -> dict[str, int]:
        s3 = self.customer.client("s3")
        totals = {"rows": 0, "files": 0, "transfers": 0}
        for tenant in self.tenants:
            found = check_delivery(
                s3=s3,
                bucket=bucket(tenant),
                prefix=tenant,
                model=MODEL,
                tenant=tenant,
                source_url=self.source_url,
                state_url=self.state_url,
                connection_id=self.connections[tenant],
                cuts=self.proxy.cuts,
            )
            totals = {k: totals[k] + found[k] for k in totals}
        assert totals["rows"] == self.rows_per_tenant * len(self.tenants)
        return totals

    def check_workers_alive(self) -> None:
        for worker in self.workers:
            code = worker.poll()
            assert code is None or code != 0, f"worker {worker.pid} exited with status 0"

    def kill_workers(self) -> None:
        """What a failed test left running."""
        for w in self.workers:
            if w.poll() is None:
                w.kill()
                w.wait(timeout=10)
        self.workers = []

    def stop_workers(self) -> list[int]:
        """SIGTERM every live worker: each drains and exits 0."""
        live = [w for w in self.workers if w.poll() is None]
        for w in live:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=120) for w in live]
        self.workers = []
        return codes


def bucket(tenant: str) -> str:
    return f"faults-{tenant}"


@contextmanager
def build_world(aws: LocalAws, tenants: int) -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="byob-faults-"))
    os.chmod(root, 0o755)  # the postgres user must reach its data directory
    cluster = Cluster(root)
    cluster.start()
    proxy = Proxy(int(aws.endpoint_url.rsplit(":", 1)[1])).up()
    try:
        source_url = cluster.database("source")
        state_url = cluster.database("state")
        pg_exec(
            source_url,
            f"CREATE TABLE {MODEL} (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
            "payload text, updated_at timestamptz NOT NULL)",
        )
        write_config(
            root / "byob.toml",
            source_url,
            [
                {
                    "name": MODEL,
                    "table": MODEL,
                    "tenant_column": "tenant_id",
                    "cursor_column": "updated_at",
                    "primary_key": ["id"],
                }
            ],
        )
        app = make_services(root, root / "byob.toml", aws, database_url=state_url)
        byob = OPEN_APPS[-1]
        world = World(
            root=root,
            cluster=cluster,
            aws=aws,
            proxy=proxy,
            source_url=source_url,
            state_url=state_url,
            app=app,
            tenants=[f"t{i}" for i in range(tenants)],
        )
        q.ensure_schema(q.make_queue(state_url), app.adapters.state)
        for tenant in world.tenants:
            conn, world.customer = onboard_s3(
                app, aws, name=f"c-{tenant}", tenant=tenant, bucket=bucket(tenant), base_path=tenant
            )
            world.connections[tenant] = conn.id
        yield world
        world.kill_workers()
        if byob in OPEN_APPS:  # closed here, while its database still runs
            OPEN_APPS.remove(byob)
        byob.close()
    finally:
        proxy.down()
        cluster.stop()
        time.sleep(0.1)
        if not os.environ.get("BYOB_KEEP_FAULTS"):  # to read the workers' logs
            subprocess.run(["rm", "-rf", str(root)], check=False)
