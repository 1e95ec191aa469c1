"""Shared fixtures: a throwaway PostgreSQL (started by `make test`), the AWS emulator over HTTP
on 127.0.0.1, and a byob application wired to both."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from byob.demo.emulator import EMULATOR_CREDENTIALS, LocalAws
from tests.support import scratch_database

# Tests talk to the emulator only; never to a real account.
os.environ.update(EMULATOR_CREDENTIALS)
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("BYOB_TEST_PG_URL")
    if not url:
        pytest.skip(reason="BYOB_TEST_PG_URL is not set; run the suite with `make test`")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database per test."""
    with scratch_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def _aws_server() -> Iterator[LocalAws]:
    aws = LocalAws().start()
    yield aws
    aws.stop()


@pytest.fixture
def aws(_aws_server: LocalAws) -> Iterator[LocalAws]:
    """The moto server, wiped before each test; IAM enforcement off unless a test turns it on."""
    _aws_server.reset()
    _aws_server.enforce_iam(False)
    yield _aws_server
    _aws_server.enforce_iam(False)


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite'}"


@pytest.fixture(autouse=True)
def _close_apps() -> Iterator[None]:
    from tests.support import OPEN_APPS

    yield
    while OPEN_APPS:
        OPEN_APPS.pop().close()
