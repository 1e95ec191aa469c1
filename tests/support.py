"""Helpers shared by integration and acceptance tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
import psycopg

from byob.app import Byob
from byob.aws.sessions import AwsConfig, AwsSessions
from byob.demo.emulator import CustomerAccount, LocalAws
from byob.settings import load_settings

CUSTOMER = "210987654321"
# Apps made by tests; conftest disposes their engines after each test, so no pooled database
# connection outlives its test (ResourceWarnings are errors here).
OPEN_APPS: list[Byob] = []


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
            if isinstance(value, list | tuple):
                lines.append(f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]")
            else:
                lines.append(f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def make_app(
    tmp_path: Path, config: Path, aws: LocalAws | None = None, *,
    service_session: boto3.Session | None = None, **settings: Any,
) -> Byob:  # fmt: skip
    """byob wired to the emulator; ``service_session`` replaces byob's own identity (needed
    when IAM enforcement is on and the emulator's dummy keys are refused)."""
    options: dict[str, Any] = {"home": tmp_path / ".byob", "config": config, "settle_lag_seconds": 0}
    options.update(settings)
    if aws is not None:
        options["aws_endpoint_url"] = aws.endpoint_url
    app = Byob(
        load_settings(**options),
        aws=AwsSessions(
            AwsConfig(endpoint_url=aws.endpoint_url, max_attempts=2),
            service_session or aws.service_session(),
        )
        if aws else None,
    )  # fmt: skip
    app.migrate()
    OPEN_APPS.append(app)
    return app


def onboard_s3(
    app: Byob, aws: LocalAws, *, name: str = "c1", tenant: str = "acme", bucket: str = "bkt",
    region: str = "us-east-1", base_path: str = "exports", account: str = CUSTOMER,
) -> tuple[Any, CustomerAccount]:  # fmt: skip
    """Create an S3 connection, let the customer create bucket and role, validate, activate."""
    customer = aws.customer(account, region)
    customer.create_bucket(bucket)
    conn = app.create_connection(
        name=name, tenant=tenant, type="s3", account_id=account, bucket=bucket, region=region,
        base_path=base_path,
    )  # fmt: skip
    policies = app.policies(conn)
    customer.create_role(policies["role_name"], policies["trust_policy"], policies["permissions_policy"])
    _, checks = app.validate(conn.name)
    assert all(c.outcome.value in ("passed", "warning") for c in checks), [c.as_dict() for c in checks]
    return app.activate(conn.name), customer


def pg_exec(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        for sql in statements:
            db.execute(sql)


def pg_insert(url: str, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as db, db.cursor() as cur:
        cur.executemany(sql, list(rows))
        db.commit()
