"""The connection's credentials: assumed with its external ID and a telling session name, and
refreshed before they expire (every multipart part is signed on its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from byob.aws.sessions import AwsConfig, AwsSessions
from tests.support import CUSTOMER, create, make_services, write_config

pytestmark = pytest.mark.integration


class RecordingSessions(AwsSessions):
    """AwsSessions that records every AssumeRole request byob sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assume_role_calls: list[dict[str, Any]] = []

    def service_client(self, service: str, region: str | None = None, **cfg: Any) -> Any:
        client = super().service_client(service, region, **cfg)
        if service == "sts":
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
