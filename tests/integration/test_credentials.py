"""The connection's credentials: assumed with its external ID and a telling session name, and
refreshed before they expire (every multipart part is signed on its own)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.domain.connections import AuthKind
from tests.support import (
    CUSTOMER,
    create,
    make_services,
    onboard_s3,
    pg_exec,
    validate,
    write_config,
)

pytestmark = pytest.mark.integration


class RecordingSessions(AwsSessions):
    """AwsSessions that records every AssumeRole request byob sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assume_role_calls: list[dict[str, Any]] = []
        self.sts_clients_made = 0

    def service_client(self, service: str, region: str | None = None, **cfg: Any) -> Any:
        client = super().service_client(service, region, **cfg)
        if service == "sts":
            self.sts_clients_made += 1
            client.meta.events.register(
                "provide-client-params.sts.AssumeRole",
                lambda params, **_: self.assume_role_calls.append(dict(params)),
            )
        return client


def test_assumed_role_session_uses_external_id_and_refreshes(tmp_path: Path, aws: Any) -> None:
    config = write_config(
        tmp_path / "byob.toml",
        "sqlite:////nonexistent.sqlite",
        [
            {
                "name": "m",
                "table": "m",
                "tenant_column": "t",
                "cursor_column": "u",
                "primary_key": ["id"],
            }
        ],
    )
    app = make_services(tmp_path, config, aws)
    sessions = RecordingSessions(AwsConfig(endpoint_url=aws.endpoint_url), aws.service_session())
    conn = create(
        app,
        name="acme.prod",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="bkt",
        region="eu-west-1",
    )

    session = sessions.for_connection(conn)
    arn = sessions.client(session, "sts", conn.region).get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{CUSTOMER}:assumed-role/{conn.role_name}/byob-acme.prod"
    assert sessions.assume_role_calls == [
        {
            "RoleArn": conn.role_arn,
            "ExternalId": conn.external_id,
            "RoleSessionName": "byob-acme.prod",
        }
    ]

    credentials = session.get_credentials()
    assert credentials.method == "assume-role"
    first = credentials.get_frozen_credentials().access_key
    # Pretend the hour is nearly over (botocore's clock and the fetcher's cache both say so):
    # the next signed request must assume the role again rather than use expiring credentials.
    credentials._expiry_time = datetime.now(UTC) + timedelta(seconds=30)
    credentials._refresh_using.__self__._cache.clear()
    assert credentials.get_frozen_credentials().access_key != first
    assert len(sessions.assume_role_calls) == 2
    assert sessions.assume_role_calls[1]["ExternalId"] == conn.external_id


def count_assume_role(app: Any) -> list[dict[str, Any]]:
    """Every AssumeRole request app's byob sends from now on (transfers' and validation's)."""
    calls: list[dict[str, Any]] = []
    aws = app.adapters.aws
    original = aws.service_client

    def service_client(service: str, region: str | None = None, **cfg: Any) -> Any:
        client = original(service, region, **cfg)
        if service == "sts":
            client.meta.events.register(
                "provide-client-params.sts.AssumeRole",
                lambda params, **_: calls.append(dict(params)),
            )
        return client

    aws.service_client = service_client
    return calls


def test_transfers_reuse_the_connections_credentials_and_validation_assumes_afresh(
    tmp_path: Path, pg_url: str, aws: Any
) -> None:
    pg_exec(
        pg_url,
        "CREATE TABLE m (id bigint PRIMARY KEY, t text NOT NULL, u timestamptz NOT NULL)",
        "INSERT INTO m VALUES (1, 'acme', now() - interval '1 hour')",
    )
    model = {"name": "m", "table": "m", "tenant_column": "t", "cursor_column": "u"}
    app = make_services(
        tmp_path,
        write_config(tmp_path / "byob.toml", pg_url, [model | {"primary_key": ["id"]}]),
        aws,
    )
    calls = count_assume_role(app)  # before onboarding makes byob's (shared) STS client
    conn, _ = onboard_s3(app, aws)
    del calls[:]  # validation's

    assert [r.record.rows for r in app.transfers.run(conn.name)] == [1]
    pg_exec(pg_url, "INSERT INTO m VALUES (2, 'acme', now())")
    assert [r.record.rows for r in app.transfers.run(conn.name)] == [1]
    assert [c["RoleArn"] for c in calls] == [conn.role_arn]  # one AssumeRole for both

    for _ in range(2):
        del calls[:]
        validate(app, conn.name)
        # The assume-role check, and the sessions of the bucket and test-object checks: each
        # assumes the role itself rather than borrow the transfers' credentials.
        with_id = [c for c in calls if c.get("ExternalId") == conn.external_id]
        assert len(with_id) == 3, calls

    del calls[:]
    pg_exec(pg_url, "INSERT INTO m VALUES (3, 'acme', now())")
    assert [r.record.rows for r in app.transfers.run(conn.name)] == [1]
    assert calls == []  # validation left the transfers' credentials alone


def test_a_changed_role_external_id_or_key_makes_a_new_session(tmp_path: Path, aws: Any) -> None:
    sessions = RecordingSessions(AwsConfig(endpoint_url=aws.endpoint_url), aws.service_session())
    conn = _role_connection(tmp_path, aws)

    def caller(c: Any, secret: str | None = None) -> str:
        return str(sessions.connection_client(c, "sts", secret).get_caller_identity()["Arn"])

    assert caller(conn) == caller(conn)
    assert len(sessions.assume_role_calls) == 1
    other_role = dataclasses.replace(conn, role_arn=f"arn:aws:iam::{CUSTOMER}:role/other")
    assert "assumed-role/other/" in caller(other_role)
    new_id = dataclasses.replace(conn, external_id="byob-another-external-id")
    caller(new_id)
    assert [(c["RoleArn"], c["ExternalId"]) for c in sessions.assume_role_calls] == [
        (conn.role_arn, conn.external_id),
        (other_role.role_arn, conn.external_id),
        (conn.role_arn, "byob-another-external-id"),
    ]
    hmac = dataclasses.replace(conn, auth=AuthKind.HMAC, access_key_id="AKIAIOSFODNN7EXAMPLE")
    first = sessions.connection_client(hmac, "s3", "secret-1")
    assert sessions.connection_client(hmac, "s3", "secret-1") is first
    assert sessions.connection_client(hmac, "s3", "secret-2") is not first


def test_kept_clients_of_many_connections_each_sign_as_their_own(tmp_path: Path, aws: Any) -> None:
    """Every kept client is made from one shared session; each must still act as its own
    connection's role, whichever connection's client was made before or after it."""
    sessions = RecordingSessions(AwsConfig(endpoint_url=aws.endpoint_url), aws.service_session())
    conn = _role_connection(tmp_path, aws)
    roles = [f"role-{n}" for n in range(4)]
    conns = [
        dataclasses.replace(conn, id=f"c{n}", role_arn=f"arn:aws:iam::{CUSTOMER}:role/{role}")
        for n, role in enumerate(roles)
    ]
    hmac = dataclasses.replace(conn, auth=AuthKind.HMAC, access_key_id="AKIAIOSFODNN7EXAMPLE")
    clients = []
    for each in conns:
        clients.append(sessions.connection_client(each, "sts"))
        sessions.connection_client(hmac, "s3", "secret-1")  # a keyed client in between
    for role, client in reversed(list(zip(roles, clients, strict=True))):
        assert f":assumed-role/{role}/" in client.get_caller_identity()["Arn"]
    assert sorted(c["RoleArn"].rsplit("/", 1)[1] for c in sessions.assume_role_calls) == roles


def test_cached_credentials_are_refreshed_before_they_expire(tmp_path: Path, aws: Any) -> None:
    sessions = RecordingSessions(AwsConfig(endpoint_url=aws.endpoint_url), aws.service_session())
    conn = _role_connection(tmp_path, aws)
    client = sessions.connection_client(conn, "sts")
    client.get_caller_identity()
    credentials = client._request_signer._credentials
    first = credentials.get_frozen_credentials().access_key
    # The hour is nearly over: the kept client must assume the role again, not sign with
    # expiring credentials (nor fail on expired ones).
    credentials._expiry_time = datetime.now(UTC) + timedelta(seconds=30)
    credentials._refresh_using.__self__._cache.clear()
    assert sessions.connection_client(conn, "sts") is client
    client.get_caller_identity()
    assert credentials.get_frozen_credentials().access_key != first
    assert len(sessions.assume_role_calls) == 2


def test_credentials_outlive_a_dropped_session_until_a_refusal(tmp_path: Path, aws: Any) -> None:
    # One session kept: two connections served in turn rebuild their sessions and clients
    # every time, but each assumes its role once (a fan-out of 200 connections through 64
    # kept sessions assumed a role for nearly every connection, twice).
    sessions = RecordingSessions(
        AwsConfig(endpoint_url=aws.endpoint_url, cached_connections=1), aws.service_session()
    )
    first = _role_connection(tmp_path, aws)
    second = dataclasses.replace(first, id="c-2", name="second")
    clients = []
    for conn in (first, second, first, second):
        client = sessions.connection_client(conn, "sts")
        assert "assumed-role/" in client.get_caller_identity()["Arn"]
        clients.append(client)
    assert clients[2] is not clients[0]  # the session was dropped and made again
    assert [c["RoleSessionName"] for c in sessions.assume_role_calls] == [
        "byob-" + first.name,
        "byob-second",
    ]
    assert sessions.sts_clients_made == 1  # byob's own STS client, shared by every AssumeRole
    # AWS refusing a request made with them drops the credentials too: a role deleted and
    # created again refuses credentials issued before.
    refused = {"Error": {"Code": "ExpiredToken"}}
    clients[3].meta.events.emit(
        "after-call.sts.GetCallerIdentity",
        parsed=refused,
        http_response=None,
        context={},
        model=None,
    )
    sessions.connection_client(second, "sts").get_caller_identity()
    assert len(sessions.assume_role_calls) == 3


def _role_connection(tmp_path: Path, aws: Any) -> Any:
    config = write_config(
        tmp_path / "byob.toml",
        "sqlite:////nonexistent.sqlite",
        [
            {
                "name": "m",
                "table": "m",
                "tenant_column": "t",
                "cursor_column": "u",
                "primary_key": ["id"],
            }
        ],
    )
    app = make_services(tmp_path, config, aws)
    return create(
        app,
        name="acme.prod",
        tenant="acme",
        type="s3",
        account_id=CUSTOMER,
        bucket="bkt",
        region="eu-west-1",
    )
