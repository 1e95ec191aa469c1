"""Helpers shared by integration and acceptance tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import psycopg
import pytest

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.container import Byob
from byob.demo.emulator import CustomerAccount, LocalAws
from byob.domain.connections import Connection
from byob.services import Services
from byob.services.events import Event, Events
from byob.settings import load_settings

if TYPE_CHECKING:
    from byob.destinations.checks import CheckResult

CUSTOMER = "210987654321"
# The invoices table most tests read: a model declaration for write_config.
INVOICES_MODEL = {
    "name": "invoices",
    "table": "invoices",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}
# With a PostgreSQL state store byob requires a key shared by every machine (32 bytes).
TEST_SECRET_KEY = "dGVzdC1rZXktZm9yLWJ5b2ItdGVzdHMtMzItYnl0ZXM"
# ... and a manifest signing key (an Ed25519 private key, 32 bytes).
TEST_SIGNING_KEY = "dGVzdC1zaWduaW5nLWtleS1mb3ItYnlvYi10ZXN0cyE"
# Containers made by tests; conftest closes them after each test, so no pooled database
# connection outlives its test (ResourceWarnings are errors here).
OPEN_APPS: list[Byob] = []


class RecordedEvents:
    """Events kept in memory, in order: what a webhook would have been sent."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def emit(self, event: Event, payload: dict[str, Any], *, tx: Any = None) -> None:
        with self._lock:
            self.items.append((str(event), payload))

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.items]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, source_url: str, models: Iterable[dict[str, Any]]) -> Path:
    lines = ["[source]", f'url = "{source_url}"']
    for m in models:
        lines.append("[[models]]")
        for key, value in m.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {str(value).lower()}")
            elif isinstance(value, list | tuple):
                lines.append(
                    f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]"
                )
            else:
                lines.append(f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def make_services(
    tmp_path: Path,
    config: Path,
    aws: LocalAws | None = None,
    *,
    service_session: boto3.Session | None = None,
    events: Events | None = None,
    **settings: Any,
) -> Services:
    """byob wired to the emulator; ``service_session`` replaces byob's own identity (needed
    when IAM enforcement is on and the emulator's dummy keys are refused)."""
    options: dict[str, Any] = {
        "home": tmp_path / ".byob",
        "config": config,
        "settle_lag_seconds": 0,
    }
    options.update(settings)
    if str(options.get("database_url", "")).startswith("postgresql"):
        options.setdefault("secret_key", TEST_SECRET_KEY)
        options.setdefault("signing_key", TEST_SIGNING_KEY)
    if aws is not None:
        options["aws_endpoint_url"] = aws.endpoint_url
    byob = Byob(
        load_settings(**options),
        aws=AwsSessions(
            AwsConfig(endpoint_url=aws.endpoint_url, max_attempts=2),
            service_session or aws.service_session(),
        )
        if aws
        else None,
        events=events,
    )
    byob.migrate()
    OPEN_APPS.append(byob)
    return Services(byob)


def create(app: Services, **fields: Any) -> Connection:
    """A draft connection created as the CLI would."""
    return app.connections.create(actor="cli", **fields).connection


def validate(app: Services, name: str) -> tuple[Connection, list[CheckResult]]:
    """Validate as the CLI would: the connection afterwards and the checks' results."""
    done = app.connections.validate(name, actor="cli")
    return done.connection, done.results


def activate(app: Services, name: str) -> Connection:
    return app.connections.activate(name, actor="cli")


def onboard_s3(
    app: Services,
    aws: LocalAws,
    *,
    name: str = "c1",
    tenant: str = "acme",
    bucket: str = "bkt",
    region: str = "us-east-1",
    base_path: str = "exports",
    account: str = CUSTOMER,
) -> tuple[Any, CustomerAccount]:
    """Create an S3 connection, let the customer create bucket and role, validate, activate."""
    customer = aws.customer(account, region)
    customer.create_bucket(bucket)
    created = app.connections.create(
        actor="cli",
        name=name,
        tenant=tenant,
        type="s3",
        account_id=account,
        bucket=bucket,
        region=region,
        base_path=base_path,
    )
    conn, policies = created.connection, created.policies
    customer.create_role(
        policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
    )
    _, checks = validate(app, conn.name)
    assert all(c.outcome.value in ("passed", "warning") for c in checks), [
        c.as_dict() for c in checks
    ]
    return activate(app, conn.name), customer


def onboard_athena(
    app: Services,
    aws: LocalAws,
    *,
    name: str = "acme-athena",
    tenant: str = "acme",
    bucket: str = "lake",
    schema: str = "billing",
    database: str = "results",
    account: str = CUSTOMER,
) -> tuple[Any, CustomerAccount, list[CheckResult]]:
    """Create an Athena connection, let the customer create bucket and role, validate and
    activate; the activated connection, the customer and the validation's checks."""
    customer = aws.customer(account, "us-east-1")
    customer.create_bucket(bucket)
    conn = create(
        app,
        name=name,
        tenant=tenant,
        type="athena",
        account_id=account,
        bucket=bucket,
        region="us-east-1",
        schema=schema,
        database=database,
    )
    policies = app.connections.policies(conn)
    customer.create_role(
        policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
    )
    _, checks = validate(app, conn.name)
    return activate(app, conn.name), customer, checks


def pg_exec(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        for sql in statements:
            db.execute(sql)


def pg_insert(url: str, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as db, db.cursor() as cur:
        cur.executemany(sql, list(rows))
        db.commit()


def create_invoices(url: str, *, rows: int = 60, is_acme: Callable[[int], bool]) -> None:
    """``rows`` invoices an hour old, owned by tenant acme where ``is_acme(id)``, else globex."""
    pg_exec(
        url,
        "CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz NOT NULL)",
    )
    pg_insert(
        url,
        "INSERT INTO invoices VALUES (%s, %s, %s, now() - interval '1 hour')",
        [(i, "acme" if is_acme(i) else "globex", f"{i}.25") for i in range(1, rows + 1)],
    )


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "the condition"
) -> Any:
    """Poll ``condition()`` until it is truthy and return its value; fail after ``timeout``
    seconds naming ``what`` was awaited. The one way tests wait for something to happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def holds_for(condition: Callable[[], Any], seconds: float, *, what: str = "the condition") -> None:
    """Check that ``condition()`` stays truthy for ``seconds``: that something does *not*
    happen (a locked job stays waiting) can only be observed over a while."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what} stopped holding"
        time.sleep(0.05)


def wait_healthy(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, *, seconds: float = 60
) -> None:
    """Wait for a started `byob serve` to answer /healthz; fail with its log if it does not."""

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"byob serve exited with {process.returncode}:\n{_log(log_path)}")
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=seconds, what="/healthz")
    except AssertionError:
        pytest.fail(f"byob serve did not answer /healthz in {seconds:.0f} s:\n{_log(log_path)}")


def _log(path: Path) -> str:
    return path.read_text(errors="replace")


@dataclass
class Served:
    """A `byob serve` process on 127.0.0.1."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path


@contextmanager
def serving(tmp: Path, **settings: str) -> Iterator[Served]:
    """`byob serve` on its own SQLite state (no source is read), with ``settings`` as BYOB_*
    variables; stopped on exit."""
    config = write_config(tmp / "byob.toml", f"sqlite:///{tmp / 'src.sqlite'}", [])
    port = free_port()
    env = dict(os.environ) | {
        "BYOB_HOME": str(tmp / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BYOB_SERVICE_PRINCIPAL_ARN": "arn:aws:iam::123456789012:role/byob",
    }
    env |= {f"BYOB_{name.upper()}": value for name, value in settings.items()}
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "byob.cli", "serve", "--port", str(port), "--no-schedule"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log_path)
        yield Served(f"http://127.0.0.1:{port}", port, process, env, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


def before_s3_call(app: Services, operation: str, handler: Callable[..., Any]) -> None:
    """Run ``handler`` (a botocore event handler) before every S3 ``operation`` the
    destinations of ``app`` send; raising from it fails the call as AWS would."""
    byob = app.adapters
    assert isinstance(byob, Byob)
    original = byob.destination

    def destination(conn: Any) -> Any:
        dest = original(conn)
        # Transfers of a connection share one client: hook it once, not once per transfer.
        dest.client.meta.events.register(
            f"before-call.s3.{operation}", handler, unique_id=f"test-{operation}-{id(handler)}"
        )
        return dest

    byob.destination = destination  # type: ignore[method-assign]


@contextmanager
def scratch_database(
    server_url: str, prefix: str = "t", *, template: str | None = None
) -> Iterator[str]:
    """A fresh database on the test cluster (empty, or a copy of ``template``), dropped
    afterwards: its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    pg_exec(server_url, f'CREATE DATABASE "{name}"{copy}')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        pg_exec(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
