"""byob's AWS sessions share one loader of botocore's service models: a session of its own
would parse them again for each connection's first client (~200 ms against 25–50 ms)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.domain import connections as c
from byob.domain.connections import AuthKind


def connection(name: str, **changes: object) -> c.Connection:
    conn = c.new_connection(
        id=f"{name:0<16}",
        name=name,
        tenant="acme",
        type="s3",
        account_id="123456789012",
        bucket="acme-data",
        region="eu-west-1",
        base_path="exports",
        now=datetime(2026, 12, 2, tzinfo=UTC),
    )
    return dataclasses.replace(conn, **changes)  # type: ignore[arg-type]


def test_every_connection_session_shares_one_model_loader() -> None:
    aws = AwsSessions(
        AwsConfig(endpoint_url="http://127.0.0.1:9"),
        boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"),
    )
    role = aws.for_connection(connection("role-a"))
    other = aws.for_connection(connection("role-b"))
    hmac = aws.for_connection(
        connection("hmac", auth=AuthKind.HMAC, access_key_id="AKIAIOSFODNN7EXAMPLE"), "secret"
    )
    loaders = {
        id(s._session.get_component("data_loader"))  # type: ignore[attr-defined]
        for s in (role, other, hmac)
    }
    assert len(loaders) == 1
    # Still each its own credentials and region.
    assert hmac.get_credentials().access_key == "AKIAIOSFODNN7EXAMPLE"
    assert role.region_name == "eu-west-1"
    assert aws.client(hmac, "s3", "eu-west-1").meta.region_name == "eu-west-1"


def offline_sessions(**config: object) -> AwsSessions:
    return AwsSessions(
        AwsConfig(endpoint_url="http://127.0.0.1:9", **config),  # type: ignore[arg-type]
        boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"),
    )


def test_a_connections_clients_are_kept_until_what_they_are_made_from_changes() -> None:
    aws = offline_sessions()
    conn = connection("role-a")
    s3 = aws.connection_client(conn, "s3")
    assert aws.connection_client(conn, "s3") is s3
    assert aws.connection_client(conn, "glue") is not s3
    for change in (
        {"role_arn": "arn:aws:iam::123456789012:role/other"},
        {"external_id": "another-external-id"},
        {"region": "us-west-2"},
        {"name": "renamed"},  # the session name recipients see in CloudTrail
    ):
        assert aws.connection_client(dataclasses.replace(conn, **change), "s3") is not s3  # type: ignore[arg-type]
    assert aws.connection_client(conn, "s3") is s3
    # A session made for one connection is never another's, nor validation's.
    assert aws.connection_client(connection("role-b"), "s3") is not s3
    assert aws.client(aws.for_connection(conn), "s3") is not s3


def test_the_cache_holds_at_most_the_configured_connections() -> None:
    aws = offline_sessions(cached_connections=2)
    a, b, c = (connection(n) for n in ("a", "b", "c"))
    first_a = aws.connection_client(a, "s3")
    aws.connection_client(b, "s3")
    assert aws.connection_client(a, "s3") is first_a  # a used last: b goes first
    aws.connection_client(c, "s3")
    assert aws.connection_client(a, "s3") is first_a
    assert len(aws._cached) == 2


def test_threads_asking_at_once_share_one_client() -> None:
    aws = offline_sessions()
    conn = connection("shared")
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: aws.connection_client(conn, "s3"), range(32)))
    assert len({id(c) for c in clients}) == 1


class _Body:
    def stream(self, *_: object, **__: object) -> Iterator[bytes]:
        yield b""


def test_a_refused_request_makes_the_next_call_assume_afresh() -> None:
    aws = offline_sessions()
    conn = connection("hmac", auth=AuthKind.HMAC, access_key_id="AKIAIOSFODNN7EXAMPLE")
    s3 = aws.connection_client(conn, "s3", "secret")
    # The endpoint answers as S3 does credentials it no longer accepts (no network needed).
    s3.meta.events.register(
        "before-send.s3.HeadBucket", lambda request, **_: AWSResponse(request.url, 403, {}, _Body())
    )
    assert aws.connection_client(conn, "s3", "secret") is s3
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="acme-data")
    assert aws.connection_client(conn, "s3", "secret") is not s3
