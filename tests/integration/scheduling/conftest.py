"""Fixtures of the scheduling tests: a second fresh PostgreSQL database for the state store
(the per-test `pg_url` holds the source rows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def state_pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for byob's state store (and the queue)."""
    name = f"state_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
