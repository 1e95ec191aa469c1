"""Shared fixtures: a throwaway PostgreSQL (started by `make test`), the AWS emulator over HTTP
on 127.0.0.1, and a byob application wired to both."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from byob.demo.emulator import EMULATOR_CREDENTIALS, LocalAws
from tests.support import TEST_SECRET_KEY, TEST_SIGNING_KEY, pg_exec, scratch_database

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
def state_template(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated once per session (per xdist worker) to byob's state schema and the
    queue's, from which each test's state store is cloned: migrating costs more than copying."""
    from byob.container import Byob
    from byob.settings import load_settings
    from byob.workers import queue as q

    name = f"template_{uuid.uuid4().hex[:12]}"
    pg_exec(pg_server_url, f'CREATE DATABASE "{name}"')
    url = f"{pg_server_url.rsplit('/', 1)[0]}/{name}"
    byob = Byob(
        load_settings(
            home=tmp_path_factory.mktemp("template"),
            database_url=url,
            secret_key=TEST_SECRET_KEY,
            signing_key=TEST_SIGNING_KEY,
        )
    )
    try:
        byob.migrate()
        q.ensure_schema(q.make_queue(url), byob.state)
    finally:
        byob.close()  # a template may have no open connection while it is copied
    yield name
    pg_exec(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def state_pg_url(pg_server_url: str, state_template: str) -> Iterator[str]:
    """A PostgreSQL state store (and queue) of its own for the test, already migrated."""
    with scratch_database(pg_server_url, "state", template=state_template) as url:
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
