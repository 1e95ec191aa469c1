"""Fixtures of the scheduling tests: a second fresh PostgreSQL database for the state store
(the per-test `pg_url` holds the source rows)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import scratch_database


@pytest.fixture
def state_pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for byob's state store (and the queue)."""
    with scratch_database(pg_server_url, "state") as url:
        yield url
