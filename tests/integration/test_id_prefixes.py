"""The state store finds IDs by their start with `LIKE`, on SQLite and on PostgreSQL: a `%` or
`_` in the start matches only itself, never any character."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from byob.domain.connections import AuthKind, Connection, ConnectionType
from byob.errors import NotFoundError
from tests.support import make_services, write_config

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 2, tzinfo=UTC)
PLAIN, PERCENT, UNDERSCORE = (start.ljust(32, "0") for start in ("abcd", "ab%d", "ab_d"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return str(request.getfixturevalue("state_pg_url"))


def test_wildcards_in_a_start_match_only_themselves(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "byob.toml", f"sqlite:///{tmp_path / 'src.sqlite'}", [])
    services = make_services(tmp_path, config, database_url=database_url)
    connections = services.adapters.state.connections
    for n, connection_id in enumerate((PLAIN, PERCENT, UNDERSCORE)):
        connections.add(
            Connection(
                id=connection_id,
                name=f"c{n}",
                tenant="acme",
                type=ConnectionType.LOCAL,
                auth=AuthKind.NONE,
                path=str(tmp_path),
                created_at=NOW,
                updated_at=NOW,
            )
        )

    assert connections.ids_starting_with("ab%", 4) == [PERCENT]
    assert connections.ids_starting_with("ab_", 4) == [UNDERSCORE]
    assert sorted(connections.ids_starting_with("ab", 4)) == sorted([PLAIN, PERCENT, UNDERSCORE])
    assert len(connections.ids_starting_with("ab", 2)) == 2

    # Through the use cases only hexadecimal starts reach the query at all.
    assert services.connections.get("abcd").id == PLAIN
    with pytest.raises(NotFoundError, match=r"^no connection named 'ab%d'$"):
        services.connections.get("ab%d")
    with pytest.raises(NotFoundError, match="give its ID, or at least its first 4 characters"):
        services.transfers.get("ab%d")
