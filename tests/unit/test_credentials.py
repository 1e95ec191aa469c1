"""Tokens, lifetimes and link states (byob.domain.credentials): pure rules, no I/O."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from byob.domain.credentials import (
    API_KEY_PREFIX,
    DEFAULT_LINK_LIFETIME,
    LINK_PREFIX,
    Link,
    LinkState,
    new_token,
    parse_lifetime,
    same_hash,
    token_hash,
)
from byob.errors import InvalidFieldError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_prefixes_name_the_kind_of_secret() -> None:
    assert (LINK_PREFIX, API_KEY_PREFIX) == ("byob_link_", "byob_key_")


@pytest.mark.parametrize("prefix", [LINK_PREFIX, API_KEY_PREFIX])
def test_tokens_are_prefixed_long_and_url_safe(prefix: str) -> None:
    token = new_token(prefix)
    assert token.startswith(prefix)
    body = token.removeprefix(prefix)
    # 32 random bytes in base64url without padding: 43 characters.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", body)


def test_tokens_are_unique() -> None:
    tokens = {new_token(LINK_PREFIX) for _ in range(1000)}
    assert len(tokens) == 1000
    bodies = {t.removeprefix(LINK_PREFIX) for t in tokens}
    assert len(bodies) == 1000


def test_token_hash_is_sha256_hex() -> None:
    token = new_token(LINK_PREFIX)
    digest = token_hash(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest
    assert token_hash(token) == digest  # deterministic, so it can be looked up
    assert token_hash(token[:-1] + ("A" if token[-1] != "A" else "B")) != digest
    assert same_hash(digest, token_hash(token))
    assert not same_hash(digest, token_hash(new_token(LINK_PREFIX)))


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("1m", timedelta(minutes=1)),
        ("90d", timedelta(days=90)),
        ("2160h", timedelta(days=90)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_lifetime_accepts(text: str, lifetime: timedelta) -> None:
    assert parse_lifetime(text) == lifetime


@pytest.mark.parametrize(
    "text",
    ["0m", "91d", "2161h", "7", "d", "-1d", "", "7w", "1.5d", "d7", "7 d", "9999999999d", "²d"],
)
def test_parse_lifetime_refuses_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        parse_lifetime(text)
    assert caught.value.field == "expires"
    assert caught.value.message


def test_default_lifetime_is_seven_days() -> None:
    assert timedelta(days=7) == DEFAULT_LINK_LIFETIME


def link(**overrides: object) -> Link:
    fields: dict[str, object] = {
        "id": "l1",
        "tenant": "acme",
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=7),
        "created_by": "operator:ops",
    }
    fields.update(overrides)
    return Link(**fields)  # type: ignore[arg-type]


def test_link_is_open_until_it_expires() -> None:
    fresh = link()
    assert fresh.state(NOW) is LinkState.OPEN
    assert fresh.state(fresh.expires_at - timedelta(microseconds=1)) is LinkState.OPEN
    assert fresh.state(fresh.expires_at) is LinkState.EXPIRED  # the expiry instant is past it
    assert fresh.state(fresh.expires_at + timedelta(days=1)) is LinkState.EXPIRED


def test_link_with_a_connection_stays_open_until_spent() -> None:
    attached = link(connection_id="c1")
    assert attached.state(NOW) is LinkState.OPEN
    spent = link(connection_id="c1", spent_at=NOW + timedelta(hours=1))
    assert spent.state(NOW + timedelta(hours=2)) is LinkState.SPENT


def test_revoked_link() -> None:
    assert link(revoked_at=NOW).state(NOW) is LinkState.REVOKED


@pytest.mark.parametrize(
    ("overrides", "state"),
    [
        ({"revoked_at": NOW, "spent_at": NOW}, LinkState.REVOKED),
        ({"revoked_at": NOW, "expires_at": NOW - timedelta(days=1)}, LinkState.REVOKED),
        (
            {"revoked_at": NOW, "spent_at": NOW, "expires_at": NOW - timedelta(days=1)},
            LinkState.REVOKED,
        ),
        ({"spent_at": NOW, "expires_at": NOW - timedelta(days=1)}, LinkState.SPENT),
        ({"expires_at": NOW - timedelta(days=1), "connection_id": "c1"}, LinkState.EXPIRED),
    ],
    ids=[
        "revoked-over-spent",
        "revoked-over-expired",
        "revoked-over-all",
        "spent-over-expired",
        "expired-with-connection",
    ],
)
def test_link_state_precedence(overrides: dict[str, object], state: LinkState) -> None:
    assert link(**overrides).state(NOW) is state


def test_link_states_are_the_api_values() -> None:
    assert [s.value for s in LinkState] == ["open", "expired", "revoked", "spent"]
