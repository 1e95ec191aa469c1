"""Records read back from the state store skip their dataclass __init__ (store/repository.py,
`restored`): they must be the same records the ordinary way would make, and anything but
exactly the class's fields must fail as the ordinary way fails."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from byob.domain import connections as c
from byob.store.repository import restored

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def a_connection() -> c.Connection:
    return c.new_connection(
        id="0123456789abcdef",
        name="acme-s3",
        tenant="acme",
        type="s3",
        account_id="123456789012",
        bucket="acme-data",
        region="us-east-1",
        base_path="exports",
        now=NOW,
    )


def test_a_restored_record_equals_the_constructed_one() -> None:
    conn = a_connection()
    fields = {f.name: getattr(conn, f.name) for f in dataclasses.fields(conn)}
    back = restored(c.Connection, dict(fields))
    assert type(back) is c.Connection
    assert back == conn and hash(back.destination_fingerprint()) == hash(
        conn.destination_fingerprint()
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.name = "other"  # type: ignore[misc]


def test_missing_or_unknown_fields_fail_as_the_constructor_does() -> None:
    conn = a_connection()
    fields = {f.name: getattr(conn, f.name) for f in dataclasses.fields(conn)}
    with pytest.raises(TypeError, match="created_at"):
        restored(c.Connection, {k: v for k, v in fields.items() if k != "created_at"})
    with pytest.raises(TypeError, match="colour"):
        restored(c.Connection, fields | {"colour": "red"})


def test_the_destination_fingerprint_is_the_one_stored_validations_hold() -> None:
    """Built without json.dumps for speed, it must stay byte for byte what it was."""
    import hashlib
    import json

    for conn in (a_connection(), dataclasses.replace(a_connection(), base_path='é/"x"')):
        material = {name: str(getattr(conn, name)) for name in c.DESTINATION_FIELDS}
        old = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]
        assert conn.destination_fingerprint() == old
