"""A real `byob serve` process, against a SQLite and against a PostgreSQL state store.

Starting a server (and its operator key, through the CLI) costs seconds, so each kind of
server is shared by every API test (pytest groups the tests by parameter, so each starts
once). Tests isolate themselves with unique connection names and tenants, and request the
function-scoped `aws` fixture when they need a wiped AWS emulator.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from byob.container import Byob
from byob.demo.emulator import LocalAws
from byob.settings import load_settings
from byob.store import tables as T
from byob.store.db import create_engine
from byob.store.state import StateStore
from tests.integration.api.helpers import ACME_IDS
from tests.support import (
    TEST_SECRET_KEY,
    TEST_SIGNING_KEY,
    create_invoices,
    free_port,
    pg_exec,
    scratch_database,
    wait_healthy,
    write_config,
)

BYOB = [sys.executable, "-m", "byob.cli"]
STARTUP_SECONDS = 60
# The import every API server declares beside its model (tests/integration/api/test_imports.py):
# CSV files of accounts and integer quantities, into the source's usage_events table.
USAGE_IMPORT = """
[[imports]]
name = "usage_events"
table = "usage_events"
tenant_column = "tenant_id"
format = "csv"
columns = { account = "text", quantity = "integer" }
key_pattern = "**.csv"
"""


@dataclass
class Server:
    """A running `byob serve` and what tests need to talk to it and inspect its state."""

    kind: str  # "sqlite" or "postgresql"
    base_url: str
    token: str  # the operator key named "ops"
    env: dict[str, str]
    home: Path
    database_url: str
    source_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None  # `byob worker`, with PostgreSQL state
    app: Any = None  # the FastAPI app, when the server runs in the test's own process
    _byob: Byob | None = field(default=None, repr=False)
    _engine: sa.Engine | None = field(default=None, repr=False)

    # -- talking to it ----------------------------------------------------------------------

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client; with the operator key unless another token (or "") is given."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.app is not None:
            from fastapi.testclient import TestClient

            # A server error comes back as a 500 answer, as it would over HTTP.
            return TestClient(
                self.app, base_url=self.base_url, headers=headers, raise_server_exceptions=False
            )
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BYOB, *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def api_key(self, name: str) -> str:
        done = self.cli("api-keys", "create", "--name", name, "--json")
        assert done.returncode == 0, done.stderr
        token = json.loads(done.stdout)["token"]
        assert isinstance(token, str)
        return token

    @property
    def worker_log_path(self) -> Path:
        return self.log_path.with_name("worker.log")

    def log(self) -> str:
        """What the server (and its worker) logged so far."""
        paths = [self.log_path, self.worker_log_path]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    # -- its state store ----------------------------------------------------------------------

    @property
    def byob(self) -> Byob:
        """byob's adapters on the server's state store (for the audit log and the like)."""
        if self._byob is None:
            self._byob = Byob(
                load_settings(
                    home=self.home,
                    database_url=self.database_url,
                    config=self.env["BYOB_CONFIG"],
                    secret_key=self.env.get("BYOB_SECRET_KEY"),
                    signing_key=self.env.get("BYOB_SIGNING_KEY"),
                )
            )
        return self._byob

    @property
    def state(self) -> StateStore:
        return self.byob.state

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = create_engine(self.database_url)
        return self._engine

    def execute(self, statement: Any) -> None:
        with self.engine.begin() as db:
            db.execute(statement)

    def link_row(self, link_id: str) -> dict[str, Any]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(T.links).where(T.links.c.id == link_id)).one()
        return dict(row._mapping)

    def state_text(self) -> str:
        """Everything the state store holds, as text: the raw SQLite files (database and WAL),
        or every column of every table of the PostgreSQL database."""
        if self.kind == "sqlite":
            path = Path(self.database_url.removeprefix("sqlite:///"))
            # Read by another process: closing a descriptor of the database file in this one
            # would drop the POSIX locks the in-process server's SQLite connections hold.
            files = [str(p) for p in (path, Path(f"{path}-wal")) if p.exists()]
            raw = subprocess.run(["cat", *files], capture_output=True, check=True).stdout
            return raw.decode("latin-1")
        chunks: list[str] = []
        with psycopg.connect(self.database_url) as db:
            tables = db.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            ).fetchall()
            assert tables
            for (table,) in tables:
                columns = db.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s",
                    (table,),
                ).fetchall()
                for (column,) in columns:
                    rows = db.execute(f'SELECT "{column}"::text FROM "{table}"').fetchall()
                    chunks += [r[0] for r in rows if r[0] is not None]
        return "\n".join(chunks)

    def close(self) -> None:
        if self._byob is not None:
            self._byob.close()
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture(scope="session")
def source_url(pg_server_url: str) -> Iterator[str]:
    """The vendor's source database for the module: invoices of tenants acme and globex."""
    with scratch_database(pg_server_url, "src") as url:
        create_invoices(url, is_acme=ACME_IDS.__contains__)
        pg_exec(
            url,
            "CREATE TABLE usage_events (tenant_id text NOT NULL, account text, quantity integer)",
        )
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    source_url: str,
    pg_server_url: str,
    _aws_server: LocalAws,
) -> Iterator[Server]:
    """byob's API with an operator key named "ops", made with `byob api-keys create`.

    On SQLite state the app runs in the test's own process (through an ASGI client, with the
    embedded workers): what these tests check is the API, not the process. On PostgreSQL it
    is the production shape end to end: `python -m byob.cli serve` and a `byob worker`, each
    in its own process, transfers going through the queue. The scheduler is off, so only
    tests start transfers."""
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"serve-{kind}")
    config = write_config(
        tmp / "byob.toml",
        source_url,
        [
            {
                "name": "invoices",
                "table": "invoices",
                "tenant_column": "tenant_id",
                "cursor_column": "updated_at",
                "primary_key": ["id"],
            }
        ],
    )
    config.write_text(config.read_text() + USAGE_IMPORT)
    state_name = None
    if kind == "sqlite":
        database_url = f"sqlite:///{tmp / 'state.sqlite'}"
    else:
        state_name = f"state_{uuid.uuid4().hex[:12]}"
        pg_exec(pg_server_url, f'CREATE DATABASE "{state_name}"')
        database_url = f"{pg_server_url.rsplit('/', 1)[0]}/{state_name}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ) | {
        "BYOB_HOME": str(tmp / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_AWS_ENDPOINT_URL": _aws_server.endpoint_url,
        "BYOB_SETTLE_LAG_SECONDS": "0",
        "BYOB_DATABASE_URL": database_url,
        **(
            {"BYOB_SECRET_KEY": TEST_SECRET_KEY, "BYOB_SIGNING_KEY": TEST_SIGNING_KEY}
            if kind == "postgresql"
            else {}
        ),
        "BYOB_PUBLIC_URL": base_url,
        "BYOB_CHECK_TIMEOUT_SECONDS": "20",
        "BYOB_AWS_MAX_ATTEMPTS": "2",
        # Every API test shares this server from one address, many refusing credentials on
        # purpose: no lockout here (test_rate_limits.py has a server of its own for that).
        "BYOB_AUTH_FAILURES_PER_MINUTE": "0",
    }
    log_path = tmp / "server.log"
    srv = Server(
        kind=kind,
        base_url=base_url,
        token="",
        env=env,
        home=tmp / ".byob",
        database_url=database_url,
        source_url=source_url,
        log_path=log_path,
    )
    in_process: list[Any] = []
    try:
        srv.token = srv.api_key("ops")
        done = srv.cli("migrate-imports")  # the imports' ledger, in the source database
        assert done.returncode == 0, done.stderr
        if kind == "sqlite":
            in_process = _serve_in_process(srv, config, _aws_server)
            yield srv
            return
        with log_path.open("wb") as log_file:
            srv.process = subprocess.Popen(
                [*BYOB, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-schedule"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_healthy(base_url, srv.process, log_path, seconds=STARTUP_SECONDS)
        if kind == "postgresql":
            with srv.worker_log_path.open("wb") as log_file:
                srv.worker = subprocess.Popen(
                    [*BYOB, "worker", "--concurrency", "2"],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
        yield srv
    finally:
        for process in (srv.worker, srv.process):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for close in reversed(in_process):
            close()
        srv.close()
        if state_name is not None:
            pg_exec(pg_server_url, f'DROP DATABASE IF EXISTS "{state_name}" WITH (FORCE)')


def _serve_in_process(srv: Server, config: Path, aws: LocalAws) -> list[Any]:
    """What `byob serve` builds, in this process: the app and the embedded workers; its log
    lines go to the server's log file as JSON. Returns what to close, in order."""
    from byob.logs import JsonFormatter
    from byob.services import Services
    from byob.web.app import create_app
    from byob.workers.runtime import build_runtime

    byob = Byob(
        load_settings(
            home=srv.home,
            config=config,
            database_url=srv.database_url,
            aws_endpoint_url=aws.endpoint_url,
            settle_lag_seconds=0,
            public_url=srv.base_url,
            check_timeout_seconds=20,
            aws_max_attempts=2,
            auth_failures_per_minute=0,  # as the env of the PostgreSQL server says, and why
        )
    )
    byob.migrate()
    services = Services(byob)
    runtime = build_runtime(services, threads=2)
    srv.app = create_app(services)
    handler = logging.FileHandler(srv.log_path)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("byob")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # as `byob serve` logs

    def unlog() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()

    return [byob.close, runtime.stop, unlog]


@pytest.fixture(scope="session")
def ops(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client holding the operator key."""
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def anonymous(server: Server) -> Iterator[httpx.Client]:
    with server.client("") as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """When a test fails, show what the server logged meanwhile."""
    if "server" not in request.fixturenames:
        yield
        return
    srv: Server = request.getfixturevalue("server")
    start = srv.log_path.stat().st_size if srv.log_path.exists() else 0
    yield
    if request.node.stash.get(_CALL_FAILED, False):
        with srv.log_path.open("rb") as log:
            log.seek(start)
            print(f"--- server log ({srv.kind}) during the test ---")
            print(log.read().decode(errors="replace")[-20000:])
