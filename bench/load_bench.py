"""A bounded load test of `byob serve`: the connections list under concurrent clients.

A real `byob serve` process (PostgreSQL state store, no scheduler) over 10,000 connections of
500 tenants, every other one with a validation and one or two transfers (the list joins in the
latest of each). Then, from 20 concurrent clients:
- a baseline: `GET /healthz` alone (no database, no authentication), for comparison;
- the mix, 4,000 requests: 40% `GET /api/v1/connections` (first pages, the `next` cursor of
  the client's previous page followed, pages deep in the list, one tenant's page), 30%
  `GET /connections` (the operator's web page, signed in through /login, the same variety),
  20% `GET /api/v1/connections/{id}`, 10% `GET /healthz`.
Per kind of request: p50, p90, p99 and max latency; requests/s; every non-2xx answer (or a list
that does not add up) is an error, and any error makes the exit status 1. The server's RSS
before, after, and at its peak during the mix; where the CPU went (server, PostgreSQL, the
clients, anything else: the clients share the machine, and other work on it is reported as
noise). The target: p99 ≤ 300 ms for the list, on the API and on the web page. Rate limits are
switched off for the measurement (they would turn most of this load away with 429, which is
their job).

The clients are the measuring instrument, on the same machine as the server and PostgreSQL:
the lighter they are, and the less they queue among themselves, the more the latencies are the
server's. Each client is a closed loop (its next request when its previous one is answered).
The drivers:
- `processes` (the default): the clients split over a few forked processes
  (`--client-processes`, 4 by default, fewer with fewer clients), on threads in each, each
  with one keep-alive `http.client` connection. The requests are dealt out to the clients
  beforehand, each does its share one after another. The standard library's client spends a
  fraction of httpx's CPU a request, and clients in different processes share no GIL: a client
  does not wait behind 19 others to send its request or to read its answer, so little of the
  latency measured is the instrument's own. Their CPU is the client processes' (reaped within
  the phase) with this process's;
- `threads`: a thread and an httpx.Client for each client, all in this process;
- `asyncio`: a coroutine and an httpx.AsyncClient for each client, on one event loop.
With `threads` and `asyncio` the clients take the requests from one shared queue, and 20
clients in one Python process queue for its GIL: their latencies include that wait. With every
driver the clients' CPU includes this process's thread sampling the server's RSS and
PostgreSQL's CPU (reported apart too).

    python bench/load_bench.py --pg-url URL [--connections 10000] [--requests 4000]
        [--clients 20] [--servers 1] [--driver processes|threads|asyncio]
        [--client-processes 4] [--json] [--fail-on-miss]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import http.client
import json
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import random
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from byob.cli.web_processes import how_many  # noqa: E402
from byob.domain.connections import AuthKind, Connection, ConnectionType, Status  # noqa: E402
from byob.domain.paging import Cursor  # noqa: E402
from byob.domain.transfers import TransferStatus  # noqa: E402
from byob.domain.windows import TransferType  # noqa: E402
from byob.store import tables as T  # noqa: E402
from byob.store.connections import connection_row  # noqa: E402
from byob.store.db import create_engine  # noqa: E402

console = Console(width=max(Console().width, 100))  # the table needs 100 columns

TARGET_P99_MS = 300.0  # the connections list, API and web page, at 20 concurrent clients
SECRET_KEY = "dGVzdC1rZXktZm9yLWJ5b2ItdGVzdHMtMzItYnl0ZXM"  # tests' key; a throwaway database
SIGNING_KEY = "dGVzdC1zaWduaW5nLWtleS1mb3ItYnlvYi10ZXN0cyE"  # tests' manifest signing key
SERVICE_PRINCIPAL = "arn:aws:iam::123456789012:role/byob"
NOISE_CORES = 0.15  # CPU spent outside server, PostgreSQL and clients, beyond which we warn
API_PAGE = 50  # the API list's page size (its default)
MIX = {"api_list": 0.4, "web_list": 0.3, "api_get": 0.2, "healthz": 0.1}
# Of the list requests: one tenant's page; a page deep in the list; the first page; the rest
# follow the `next` cursor of the client's previous page.
TENANT_SHARE, DEEP_SHARE, FIRST_SHARE = 0.25, 0.25, 0.1
LABELS = {
    "api_list": "GET /api/v1/connections",
    "api_list_tenant": "  … ?tenant=",
    "web_list": "GET /connections (web page)",
    "web_list_tenant": "  … ?tenant=",
    "api_get": "GET /api/v1/connections/{id}",
    "healthz": "GET /healthz (in the mix)",
}
# One for every httpx client (the threads and asyncio drivers): httpx would otherwise load the
# CA bundle for each (tens of ms of CPU inside the measured run), though every request here is
# plain HTTP.
TLS = ssl.create_default_context()
NEXT_LINK = re.compile(r'rel="next" href="/connections\?[^"]*?after=([A-Za-z0-9_-]+)"')


# -- the database and the server ------------------------------------------------------------------


def fresh_database(server_url: str, prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_config(path: Path, source_url: str) -> Path:
    """A models file with no models: the list does not read the source."""
    path.write_text(f'[source]\nurl = "{source_url}"\n')
    return path


def byob_cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "byob.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"byob {' '.join(args)} exited with {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout)


@dataclass
class Seeded:
    ids: list[str]
    tenants: list[str]
    cursors: list[str]  # every API page's `after` cursor, as byob hands them out
    validations: int
    transfers: int
    seconds: float


def seed(state_url: str, connections: int, tenants: int, rng: random.Random) -> Seeded:
    """Connections of local type, active (every tenth paused), spread over ``tenants``, in
    bulk straight into the state store (the load test measures reading them, not creating
    them). Every other one has a validation and one or two transfers (the newest succeeded,
    some older ones failed)."""
    started = time.perf_counter()
    t0 = datetime.now(UTC) - timedelta(days=30)
    conns: list[Connection] = []
    for i in range(connections):
        # Every fourth shares its creation time with the one before: ties the ID breaks.
        at = t0 + timedelta(seconds=200 * (i - (i % 4 == 1)))
        conns.append(
            Connection(
                id=uuid.uuid4().hex,
                name=f"c{i}",
                tenant=f"tenant-{i % tenants:04d}",
                type=ConnectionType.LOCAL,
                status=Status.ACTIVE if i % 10 else Status.PAUSED,
                path=f"/srv/exports/tenant-{i % tenants:04d}/c{i}",
                auth=AuthKind.NONE,
                frequency_minutes=60,
                first_activated_at=at,
                created_at=at,
                updated_at=at,
            )
        )
    validations: list[dict[str, Any]] = []
    transfers: list[dict[str, Any]] = []
    for i, conn in enumerate(conns[::2]):
        at = conn.created_at + timedelta(minutes=5)
        checks = [
            {
                "name": name,
                "outcome": "passed",
                "message": "ok",
                "aws_code": None,
                "duration_ms": 12,
                "at": at.isoformat(),
            }
            for name in ("path_exists", "path_writable", "write_probe")
        ]
        validations.append(
            {
                "connection_id": conn.id,
                "fingerprint": conn.destination_fingerprint(),
                "passed": True,
                "checks": checks,
                "created_at": at,
            }
        )
        for n in range(1 + i % 2):
            when = at + timedelta(hours=1 + n)
            ok = n == i % 2 or rng.random() < 0.5  # the latest succeeded
            transfers.append(
                {
                    "id": uuid.uuid4().hex,
                    "connection_id": conn.id,
                    "model": "invoices",
                    "type": (TransferType.INCREMENTAL if n else TransferType.FULL_REFRESH).value,
                    "status": (TransferStatus.SUCCEEDED if ok else TransferStatus.FAILED).value,
                    "started_at": when,
                    "window_low": None if n == 0 else when - timedelta(hours=1),
                    "window_high": when - timedelta(seconds=30),
                    "rows": 1000 + i,
                    "bytes": 64_000 + 64 * i,
                    "files": 1,
                    "attempts": 1 if ok else 3,
                    "error": None if ok else "PermissionError: the directory is read-only",
                    "manifest_key": f"invoices/{when:%Y%m%dT%H%M%S}/_manifest.json",
                    "created_at": when,
                    "finished_at": when + timedelta(seconds=2),
                    "cancel_requested": False,
                    "excluded_rows": 0,
                }
            )
    engine = create_engine(state_url)
    try:
        rows = [connection_row(c) for c in conns]
        with engine.begin() as db:
            for table, batch in (
                (T.connections, rows),
                (T.validations, validations),
                (T.transfers, transfers),
            ):
                for start in range(0, len(batch), 2000):
                    db.execute(table.insert(), batch[start : start + 2000])
        with psycopg.connect(state_url, autocommit=True) as raw:  # as autovacuum would soon
            raw.execute("ANALYZE connections, validations, transfers")
    finally:
        engine.dispose()
    ordered = sorted(conns, key=lambda c: (c.created_at, c.id))
    cursors = [
        Cursor(created_at=c.created_at, id=c.id).encode() for c in ordered[API_PAGE - 1 :: API_PAGE]
    ]
    return Seeded(
        ids=[c.id for c in conns],
        tenants=sorted({c.tenant for c in conns}),
        cursors=cursors[:-1],  # the last one's next page is empty
        validations=len(validations),
        transfers=len(transfers),
        seconds=time.perf_counter() - started,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env: dict[str, str], port: int, log_path: Path, processes: int
) -> subprocess.Popen[bytes]:
    """`byob serve` on ``port``, once each of its ``processes`` has started answering."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "byob.cli", "serve", "--port", str(port), "--no-schedule"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"byob serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        try:
            answered = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
        except httpx.TransportError:
            answered = 0
        started = log_path.read_text().count("Application startup complete")
        if answered == 200 and started >= processes:
            return process
        if time.monotonic() > deadline:
            raise RuntimeError(f"byob serve did not answer /healthz:\n{log_path.read_text()}")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sign_in(base_url: str, token: str) -> str:
    """The operator's session cookie (`name=value`), signed in through the login form."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        form = client.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if form.status_code != 200 or not match:
            raise RuntimeError(f"GET /login answered {form.status_code}")
        done = client.post("/login", data={"api_key": token, "csrf_token": match.group(1)})
        if done.status_code != 303 and not done.is_redirect:
            raise RuntimeError(f"POST /login answered {done.status_code}: {done.text[:500]}")
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


# -- the server's memory and CPU ------------------------------------------------------------------


def proc_status(pid: int, key: str) -> float:
    """A `VmRSS`-like figure of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def rss(pids: list[int], key: str = "VmRSS") -> float:
    """The servers' resident memory together, in MiB."""
    return sum(proc_status(pid, key) for pid in pids)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting on I/O)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def sessions(url: str) -> int:
    """Sessions ever opened to the database: connections the servers' pools made."""
    with psycopg.connect(url) as db:
        query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        return int(db.execute(query).fetchone()[0])  # type: ignore[index]


def postmaster(url: str) -> psutil.Process:
    """The PostgreSQL cluster's main process (on this machine): its children are the
    backends serving byob."""
    with psycopg.connect(url) as db:
        backend = db.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    parent = psutil.Process(backend).parent()
    assert parent is not None
    return parent


class Sampler:
    """On a thread, every ``interval`` seconds while in use: the servers' RSS (its peak) and
    the CPU time of PostgreSQL's processes. Backends come and go (the pool's overflow): a live
    one counts from its first sample (0 when born during the run); one that ended counts in
    the postmaster's time for its reaped children."""

    def __init__(self, pids: list[int], pg: psutil.Process, interval: float = 0.25) -> None:
        self.pids, self.pg, self.interval = pids, pg, interval
        self.peak = 0.0
        self.cpu = 0.0  # of its thread: in this process's CPU time, so in the clients'
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def pg_cpu(self) -> float:
        return sum(cpu - self._first[pid] for pid, cpu in self._last.items())

    def _sample(self, *, first: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.peak = max(self.peak, rss(self.pids))
        alive = {self.pg.pid}
        for proc in [self.pg, *self.pg.children()]:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            cpu = t.user + t.system
            if proc.pid == self.pg.pid:
                cpu += t.children_user + t.children_system
            alive.add(proc.pid)
            self._first.setdefault(proc.pid, cpu if first else 0.0)
            self._last[proc.pid] = cpu
        for pid in set(self._last) - alive:  # now in the postmaster's children time
            del self._last[pid], self._first[pid]

    def _run(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample(first=False)
        self.cpu = time.thread_time() - start

    def __enter__(self) -> Sampler:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    ms: float
    error: str | None


@dataclass
class Walker:
    """One client's place in the list, on the API and on the web page."""

    rng: random.Random
    base_url: str  # the server this client talks to
    seeded: Seeded
    cookie: str  # the operator's session, for the web page
    token: str  # the operator's API key, for the API
    api_next: str | None = None
    web_next: str | None = None

    def request(self, kind: str) -> tuple[str, str, dict[str, str], dict[str, str]]:
        """(the label of the request, path, query, headers)."""
        if kind == "healthz":
            return kind, "/healthz", {}, {}
        bearer = {"Authorization": f"Bearer {self.token}"}
        if kind == "api_get":
            return kind, f"/api/v1/connections/{self.rng.choice(self.seeded.ids)}", {}, bearer
        web = kind == "web_list"
        path = "/connections" if web else "/api/v1/connections"
        headers = {"Cookie": self.cookie} if web else bearer
        draw = self.rng.random()
        if draw < TENANT_SHARE:
            return f"{kind}_tenant", path, {"tenant": self.rng.choice(self.seeded.tenants)}, headers
        following = self.web_next if web else self.api_next
        if draw < TENANT_SHARE + DEEP_SHARE:
            after: str | None = self.rng.choice(self.seeded.cursors)
        elif draw < TENANT_SHARE + DEEP_SHARE + FIRST_SHARE or following is None:
            after = None
        else:
            after = following
        return kind, path, {"after": after} if after else {}, headers

    def absorb(
        self, label: str, query: dict[str, str], status: int, text: str, path: str
    ) -> str | None:
        """Keep the next cursor; an error's description when the answer (its status and body,
        to the request for ``path``) is not right."""
        if not 200 <= status < 300:
            return f"{status} {' '.join(text[:300].split())}"
        if label == "api_list":
            body = json.loads(text)
            self.api_next = body["next"]
            if body["total"] != len(self.seeded.ids):
                return f"total {body['total']} of {len(self.seeded.ids)}"
            if body["next"] and len(body["items"]) != API_PAGE:
                return f"a page of {len(body['items'])} before the end"
        elif label == "web_list":
            found = NEXT_LINK.search(text)
            self.web_next = html.unescape(found.group(1)) if found else None
            if found is None and "after" not in query:
                return "the first page has no Next link"
        elif label.endswith("_tenant"):
            if label.startswith("api") and json.loads(text)["total"] < 1:
                return f"no connections of {query['tenant']}"
        elif label == "api_get":
            body = json.loads(text)
            if not path.endswith(body["id"]):
                return f"asked for {path}, got {body['id']}"
        return None


def plan(requests: int, rng: random.Random) -> list[str]:
    """The kinds of ``requests`` requests in the mix's proportions, shuffled."""
    kinds = [k for k, share in MIX.items() for _ in range(round(requests * share))]
    kinds = (kinds + ["api_list"] * requests)[:requests]
    rng.shuffle(kinds)
    return kinds


def absorb_httpx(
    walker: Walker, label: str, query: dict[str, str], response: httpx.Response
) -> str | None:
    return walker.absorb(
        label, query, response.status_code, response.text, response.request.url.path
    )


def run_async(kinds: list[str], walkers: list[Walker]) -> list[Sample]:
    samples: list[Sample] = []
    queue = iter(kinds)

    async def client(walker: Walker) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=walker.base_url, timeout=30, limits=limits, verify=TLS
        ) as http:
            for kind in queue:
                label, path, query, headers = walker.request(kind)
                start = time.perf_counter()
                try:
                    response = await http.get(path, params=query, headers=headers)
                    error = absorb_httpx(walker, label, query, response)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                samples.append(Sample(label, 1000 * (time.perf_counter() - start), error))

    async def all_clients() -> None:
        await asyncio.gather(*(client(w) for w in walkers))

    asyncio.run(all_clients())
    return samples


def run_threads(kinds: list[str], walkers: list[Walker]) -> list[Sample]:
    samples: list[Sample] = []
    queue, lock = iter(kinds), threading.Lock()

    def take() -> Iterator[str]:
        while True:
            with lock:
                kind = next(queue, None)
            if kind is None:
                return
            yield kind

    def client(walker: Walker) -> None:
        with httpx.Client(base_url=walker.base_url, timeout=30, verify=TLS) as http:
            for kind in take():
                label, path, query, headers = walker.request(kind)
                start = time.perf_counter()
                try:
                    response = http.get(path, params=query, headers=headers)
                    error = absorb_httpx(walker, label, query, response)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                samples.append(Sample(label, 1000 * (time.perf_counter() - start), error))

    threads = [threading.Thread(target=client, args=(w,)) for w in walkers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


Run = Callable[[], list[Sample]]
# A driver sets the clients up for the requests of a phase and hands back the call that runs
# them (the part timed).
Driver = Callable[[list[str], list[Walker]], Run]


def get(
    conn: http.client.HTTPConnection, target: str, headers: dict[str, str]
) -> tuple[int, bytes]:
    """A GET on a keep-alive connection: (status, body). Once more on a new connection when
    the server had closed the one kept (never for a connection just opened)."""
    reused = conn.sock is not None
    try:
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
    except ConnectionError:  # RemoteDisconnected, BrokenPipeError, ConnectionResetError
        conn.close()
        if not reused:
            raise
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
    return response.status, response.read()  # read to its end: the connection is free again


def walk(walker: Walker, kinds: list[str], samples: list[Sample]) -> None:
    """One client on the standard library's HTTP client: ``kinds`` one after another, on one
    keep-alive connection (no TLS: the servers are plain HTTP on this machine)."""
    url = urllib.parse.urlsplit(walker.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        for kind in kinds:
            label, path, query, headers = walker.request(kind)
            target = f"{path}?{urllib.parse.urlencode(query)}" if query else path
            start = time.perf_counter()
            try:
                status, body = get(conn, target, headers)
                error = walker.absorb(label, query, status, body.decode(errors="replace"), path)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                conn.close()  # whatever state it was left in, the next request starts afresh
                error = f"{type(exc).__name__}: {exc}"
            samples.append(Sample(label, 1000 * (time.perf_counter() - start), error))
    finally:
        conn.close()


def client_process(
    go: multiprocessing.synchronize.Event,
    out: multiprocessing.connection.Connection,
    walkers: list[Walker],
    shares: list[list[str]],
) -> None:
    """In a forked client process: its walkers on threads, once the load is on; their samples
    sent back to the parent."""
    go.wait()
    samples: list[Sample] = []  # appended to by every thread: one step under the GIL
    threads = [
        threading.Thread(target=walk, args=(walker, share, samples))
        for walker, share in zip(walkers, shares, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.send(samples)
    out.close()


def fork_clients(kinds: list[str], walkers: list[Walker], processes: int) -> Run:
    """The clients in ``processes`` forked processes, ready and waiting: client i does
    ``kinds[i::len(walkers)]``, process p runs clients ``p::processes``. Forked before the
    measurement starts: before the sampler's thread does (a lock a thread holds at the fork
    stays held in the child), and outside the time measured."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    shares = [kinds[i :: len(walkers)] for i in range(len(walkers))]
    n = max(1, min(processes, len(walkers)))
    started: list[tuple[multiprocessing.connection.Connection, BaseProcess]] = []
    try:
        for p in range(n):
            receive, send = context.Pipe(duplex=False)
            child: BaseProcess = context.Process(
                target=client_process,
                args=(go, send, walkers[p::n], shares[p::n]),
                name=f"load-client-{p}",
                daemon=True,
            )
            child.start()
            send.close()  # the child's alone: its end, should it die, reads as EOF
            started.append((receive, child))
    except BaseException:
        for _, child in started:
            child.terminate()
            child.join()
        raise

    def run() -> list[Sample]:
        go.set()
        samples: list[Sample] = []
        try:
            for receive, child in started:
                try:
                    samples.extend(receive.recv())
                except EOFError:
                    child.join()
                    raise RuntimeError(
                        f"client process {child.pid} exited with {child.exitcode} and no samples"
                    ) from None
        finally:
            for receive, child in started:
                receive.close()
                child.join()  # reaped: its CPU time is now in RUSAGE_CHILDREN
        return samples

    return run


DRIVERS = ("processes", "threads", "asyncio")


def driver_for(name: str, client_processes: int) -> Driver:
    if name == "processes":
        return lambda kinds, walkers: fork_clients(kinds, walkers, client_processes)
    run = {"threads": run_threads, "asyncio": run_async}[name]
    return lambda kinds, walkers: lambda: run(kinds, walkers)


def clients_cpu() -> float:
    """User + system CPU time of this process and of its children reaped so far (the client
    processes, once joined; the servers are reaped only when stopped)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class Phase:
    """One measured run of requests: its samples, wall time and the server's RSS and CPU."""

    samples: list[Sample]
    seconds: float
    rss_before: float
    rss_after: float
    rss_peak: float
    server_cpu: float
    client_cpu: float  # this process's and the client processes'
    sampling_cpu: float  # of client_cpu: the sampler's thread
    pg_cpu: float
    machine_cpu: float  # server, clients, PostgreSQL and anything else
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def measure(
    driver: Driver, pids: list[int], pg: psutil.Process, kinds: list[str], walkers: list[Walker]
) -> Phase:
    """The CPU counted from before the clients are set up (forked), the time from when they
    start."""
    rss_before, cpu_before, busy_before = rss(pids), cpu_seconds(pids), machine_busy()
    clients_before = clients_cpu()
    run = driver(kinds, walkers)
    with Sampler(pids, pg) as sampler:
        start = time.perf_counter()
        samples = run()
        seconds = time.perf_counter() - start
    client_cpu = clients_cpu() - clients_before
    phase = Phase(
        samples=samples,
        seconds=seconds,
        rss_before=rss_before,
        rss_after=rss(pids),
        rss_peak=sampler.peak,
        server_cpu=cpu_seconds(pids) - cpu_before,
        client_cpu=client_cpu,
        sampling_cpu=sampler.cpu,
        pg_cpu=sampler.pg_cpu,
        machine_cpu=machine_busy() - busy_before,
    )
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.kind, []).append(s)
        if s.kind.endswith("_tenant"):  # a tenant's page counts for its list too
            groups.setdefault(s.kind.removesuffix("_tenant"), []).append(s)
    groups["all"] = samples
    order = [*LABELS, "all"]
    phase.figures = {k: figures(groups[k], seconds) for k in order if k in groups}
    return phase


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest rank."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def figures(samples: list[Sample], seconds: float) -> dict[str, Any]:
    ms = sorted(s.ms for s in samples)
    return {
        "requests": len(samples),
        "errors": sum(1 for s in samples if s.error),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(ms[-1], 1),
        "per_second": round(len(samples) / seconds, 1),
    }


def show(title: str, phase: Phase) -> None:
    table = Table("requests", "n", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", title=title)
    for kind, f in phase.figures.items():
        table.add_row(
            LABELS.get(kind, kind),
            f"{f['requests']:,}",
            str(f["errors"]),
            f"{f['p50_ms']:.0f}",
            f"{f['p90_ms']:.0f}",
            f"{f['p99_ms']:.0f}",
            f"{f['max_ms']:.0f}",
        )
    console.print(table)
    console.print(f"{len(phase.samples):,} requests in {phase.seconds:.1f} s: {load(phase)}")


def load(phase: Phase) -> str:
    """Requests/s, and where the CPU went (in cores busy on average)."""
    n, s = len(phase.samples), phase.seconds
    return (
        f"{n / s:,.1f} requests/s; CPU, in cores: server {phase.server_cpu / s:.2f} "
        f"({1000 * phase.server_cpu / n:.1f} ms a request), PostgreSQL {phase.pg_cpu / s:.2f}, "
        f"clients {phase.client_cpu / s:.2f} ({phase.sampling_cpu / s:.2f} of it sampling the "
        f"server and PostgreSQL), anything else {other_cpu(phase) / s:.2f}"
    )


def other_cpu(phase: Phase) -> float:
    """CPU the machine spent on none of the measured parts: other people's work is noise."""
    return max(0.0, phase.machine_cpu - phase.server_cpu - phase.pg_cpu - phase.client_cpu)


def phase_json(phase: Phase) -> dict[str, Any]:
    return {
        "seconds": round(phase.seconds, 2),
        "requests_per_second": round(len(phase.samples) / phase.seconds, 1),
        "rss_mib": {
            "before": round(phase.rss_before, 1),
            "after": round(phase.rss_after, 1),
            "peak_sampled": round(phase.rss_peak, 1),
        },
        "cpu_seconds": {
            "server": round(phase.server_cpu, 2),
            "postgresql": round(phase.pg_cpu, 2),
            "clients": round(phase.client_cpu, 2),
            "anything_else": round(other_cpu(phase), 2),
        },
        "server_cpu_ms_per_request": round(1000 * phase.server_cpu / len(phase.samples), 2),
        "clients_cpu_seconds_sampling": round(phase.sampling_cpu, 2),  # of cpu_seconds.clients
        "by_kind": phase.figures,
    }


# -- the run --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", default=os.environ.get("BYOB_BENCH_PG_URL", ""))
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--requests", type=int, default=4_000, help="in the mix")
    parser.add_argument("--baseline-requests", type=int, default=1_000, help="of /healthz alone")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="`byob serve` commands over the same state store, each on its own port, the "
        "clients spread evenly (as behind a load balancer); RSS and CPU are their sums",
    )
    parser.add_argument(
        "--web-processes",
        type=int,
        default=None,
        help="processes each `byob serve` answers with on its port (byob's own default: one "
        "per CPU with PostgreSQL state); RSS and CPU count every one",
    )
    parser.add_argument(
        "--driver",
        choices=DRIVERS,
        default="processes",
        help="the clients: processes (the default; forked client processes, threads in each "
        "with an http.client connection, every client its share of the requests: a fraction "
        "of httpx's CPU a request, and no GIL shared by all the clients, so the latencies are "
        "the server's rather than the clients' queueing), threads (httpx.Client each, in this "
        "process) or coroutines on one event loop (httpx.AsyncClient each)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        help="processes the clients are split over, with --driver processes (default: "
        "min(4, clients))",
    )
    parser.add_argument("--target-ms", type=float, default=TARGET_P99_MS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit with 3 when the target is missed"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server log)")
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("--pg-url or BYOB_BENCH_PG_URL is required")
    if args.requests < 100 or args.clients < 1 or args.servers < 1:
        parser.error("--requests must be at least 100 (every kind in the mix), --clients 1")
    if args.client_processes is None:
        args.client_processes = min(4, args.clients)
    if not 1 <= args.client_processes <= args.clients:
        parser.error("--client-processes must be between 1 and --clients")
    clients = driver_for(args.driver, args.client_processes)
    in_processes = f" in {args.client_processes} processes" if args.driver == "processes" else ""
    global console
    if args.json:
        console = Console(stderr=True, width=console.width)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="byob-load-"))
    db_name, state_url = fresh_database(args.pg_url, "load")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ports = [free_port() for _ in range(args.servers)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        env = dict(os.environ) | {
            "BYOB_HOME": str(work / ".byob"),
            "BYOB_CONFIG": str(write_config(work / "byob.toml", f"sqlite:///{work / 'src.db'}")),
            "BYOB_DATABASE_URL": state_url,
            "BYOB_SECRET_KEY": SECRET_KEY,
            "BYOB_SIGNING_KEY": SIGNING_KEY,
            "BYOB_PUBLIC_URL": urls[0],
            "BYOB_SERVICE_PRINCIPAL_ARN": SERVICE_PRINCIPAL,
            # 0 turns the request budget off (settings.py): 20 clients from one address
            # would otherwise be held to 50 requests/s after a burst of 500.
            "BYOB_RATE_LIMIT_PER_SECOND": "0",
            "BYOB_RATE_LIMIT_BURST": "0",
        }
        byob_cli(env, "migrate")
        seeded = seed(state_url, args.connections, args.tenants, rng)
        console.print(
            f"seeded {args.connections:,} connections of {len(seeded.tenants):,} tenants, "
            f"{seeded.validations:,} validations, {seeded.transfers:,} transfers in "
            f"{seeded.seconds:.1f} s (PostgreSQL state store, ANALYZEd)"
        )
        token = byob_cli(env, "api-keys", "create", "--name", "load")["token"]
        if args.web_processes:
            env["BYOB_WEB_PROCESSES"] = str(args.web_processes)
        each = how_many(args.web_processes, production=True)  # byob's own rule
        for i, port in enumerate(ports):
            processes.append(start_server(env, port, work / f"server-{i}.log", each))
        pids = [p.pid for p in processes]
        pids += [c.pid for pid in pids for c in psutil.Process(pid).children()]
        rss_started = rss(pids)
        cookie = sign_in(urls[0], token)  # sealed with the shared key: good on every server

        def walkers() -> list[Walker]:
            return [
                Walker(random.Random(rng.random()), urls[i % len(urls)], seeded, cookie, token)
                for i in range(args.clients)
            ]

        console.print(
            f"{args.servers} × byob serve on {each} process{'es' if each > 1 else ''} "
            f"(pid {', '.join(map(str, pids))}), rate limits off; "
            f"{args.clients} clients ({args.driver}{in_processes}); {os.cpu_count()} CPUs shared by server, "
            "PostgreSQL and clients"
        )
        # Warm-up, not counted: a round of every kind per client (imports, pools, plans).
        pg = postmaster(state_url)
        measure(clients, pids, pg, [*MIX] * 2 * args.clients, walkers())
        baseline = measure(clients, pids, pg, ["healthz"] * args.baseline_requests, walkers())
        opened = sessions(state_url)
        mixed = measure(clients, pids, pg, plan(args.requests, rng), walkers())
        opened = sessions(state_url) - opened - 1  # our own count's session
        rss_after, rss_hwm = rss(pids), rss(pids, "VmHWM")
    finally:
        for process in processes:
            stop_server(process)
        with contextlib.suppress(psycopg.Error):
            drop_database(args.pg_url, db_name)
        if args.keep:
            console.print(f"kept {work} (server logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)

    api, web = mixed.figures["api_list"], mixed.figures["web_list"]
    met = api["p99_ms"] <= args.target_ms and web["p99_ms"] <= args.target_ms
    errors = [s for s in mixed.samples + baseline.samples if s.error]
    health = baseline.figures["healthz"]
    noisy = other_cpu(mixed) / mixed.seconds > NOISE_CORES
    verdict = (
        f"{'MET' if met else 'MISSED'}: p99 of GET /api/v1/connections {api['p99_ms']:.0f} ms, "
        f"of GET /connections {web['p99_ms']:.0f} ms (target ≤ {args.target_ms:.0f} ms) at "
        f"{args.connections:,} connections and {args.clients} concurrent clients"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "connections": args.connections,
                    "tenants": len(seeded.tenants),
                    "validations": seeded.validations,
                    "transfers": seeded.transfers,
                    "clients": args.clients,
                    "servers": args.servers,
                    "web_processes": each,
                    "driver": args.driver,
                    "client_processes": (
                        args.client_processes if args.driver == "processes" else None
                    ),
                    "cpus": os.cpu_count(),
                    "rate_limits": "off",
                    "baseline_healthz": phase_json(baseline),
                    "mix": phase_json(mixed),
                    "rss_mib": {
                        "started": round(rss_started, 1),
                        "before_mix": round(mixed.rss_before, 1),
                        "peak_during_mix": round(mixed.rss_peak, 1),
                        "after_mix": round(rss_after, 1),
                        "high_water_mark": round(rss_hwm, 1),
                    },
                    "postgresql_sessions_opened_during_mix": opened,
                    "errors": len(errors),
                    "target_p99_ms": args.target_ms,
                    "target_met": met,
                    "machine_was_busy_with_other_work": noisy,
                    "verdict": verdict,
                },
                indent=2,
            )
        )
    else:
        console.print(
            f"baseline, GET /healthz alone, {args.clients} clients: p50 {health['p50_ms']:.0f} "
            f"ms, p99 {health['p99_ms']:.0f} ms; {load(baseline)}"
        )
        show(f"the mix: {args.requests:,} requests, {args.clients} concurrent clients", mixed)
        summed = "" if args.servers == 1 else " (summed)"
        console.print(
            f"server RSS{summed}: {rss_started:.0f} MiB started, {mixed.rss_before:.0f} MiB "
            f"before the mix, peak {mixed.rss_peak:.0f} MiB during it, {rss_after:.0f} MiB "
            f"after (high-water mark {rss_hwm:.0f} MiB)"
        )
        console.print(f"PostgreSQL sessions opened during the mix: {opened:,}")
        console.print(f"errors: {len(errors)}")
        if noisy:
            console.print(
                "[yellow]the machine was busy with other work during the mix "
                f"({other_cpu(mixed) / mixed.seconds:.2f} cores): these figures are pessimistic"
            )
        console.print(("[green]" if met else "[red]") + verdict)
    for s in errors[:10]:
        console.print(f"  {LABELS.get(s.kind, s.kind)}: {s.error}", highlight=False)
    if errors:
        return 1
    return 3 if args.fail_on_miss and not met else 0


if __name__ == "__main__":
    sys.exit(main())
