"""The connections list on both state stores: every page in one query, keyset order that holds
with ties in the creation time, each connection's latest validation and transfer."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from byob.domain.connections import AuthKind, Connection, ConnectionType, Status, Validation
from byob.domain.paging import Cursor
from byob.domain.transfers import TransferFilter
from byob.domain.windows import TransferType, Window
from byob.errors import InvalidFieldError, NotFoundError
from byob.store.db import create_engine, migrate
from byob.store.state import StateStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        db = create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
        migrate(db)
    else:
        db = create_engine(request.getfixturevalue("state_pg_url"))
    yield StateStore(db)
    db.dispose()


def connection(i: int, *, tenant: str, at: datetime) -> Connection:
    return Connection(
        id=f"{i:032x}",
        name=f"c{i}",
        tenant=tenant,
        type=ConnectionType.LOCAL,
        status=Status.ACTIVE,
        path=f"/tmp/c{i}",
        auth=AuthKind.NONE,
        created_at=at,
        updated_at=at,
    )


@pytest.fixture
def stored(state: StateStore) -> list[Connection]:
    """23 connections of two tenants; every third shares its creation time with the next
    (the ID breaks the tie); some validated twice, some with two transfers."""
    made = []
    for i in range(23):
        at = T0 + timedelta(seconds=i - i % 3 // 2)
        made.append(state.connections.add(connection(i, tenant=f"t{i % 2}", at=at)))
    for conn in made[::4]:
        for passed in (False, True):
            state.validations.add(
                Validation(
                    connection_id=conn.id, fingerprint="f", passed=passed, checks=[], created_at=T0
                )
            )
    for conn in made[::5]:
        for n in range(2):
            state.transfers.plan(
                connection_id=conn.id,
                model=f"m{n}",
                kind=TransferType.INCREMENTAL,
                window=Window(low=None, high=T0),
                started_at=T0 + timedelta(minutes=n),
                now=T0 + timedelta(minutes=n),
            )
    return sorted(made, key=lambda c: (c.created_at, c.id))


def statements(state: StateStore) -> list[str]:
    seen: list[str] = []
    assert isinstance(state.bind, sa.Engine)

    def count(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(state.bind, "before_cursor_execute", count)
    return seen


def test_pages_forward_and_back_visit_each_once_in_one_query_each(
    state: StateStore, stored: list[Connection]
) -> None:
    seen = statements(state)
    pages, after = [], None
    while True:
        page = state.connection_pages.page(after=after, limit=5)
        pages.append(page)
        assert page.total == 23
        if page.next is None:
            break
        after = Cursor.decode(page.next, field="after")
    assert len(seen) == len(pages) == 5  # one query a page
    forward = [x.connection.id for p in pages for x in p.items]
    assert forward == [c.id for c in stored]
    assert pages[0].previous is None and pages[-1].next is None

    backward: list[str] = []
    before = pages[-1].previous
    while before is not None:
        page = state.connection_pages.page(before=Cursor.decode(before, field="b"), limit=5)
        backward = [x.connection.id for x in page.items] + backward
        before = page.previous
    assert backward + [x.connection.id for x in pages[-1].items] == forward


def test_latest_validation_and_transfer_ride_along(
    state: StateStore, stored: list[Connection]
) -> None:
    items = {x.connection.id: x for x in state.connection_pages.page(limit=50).items}
    for conn in stored:
        listed = items[conn.id]
        assert listed.connection == replace(conn)
        if int(conn.id, 16) % 4 == 0:
            assert listed.validation is not None and listed.validation.passed
        else:
            assert listed.validation is None
        if int(conn.id, 16) % 5 == 0:
            assert listed.last_transfer is not None and listed.last_transfer.model == "m1"
        else:
            assert listed.last_transfer is None


def test_a_tenant_pages_alone(state: StateStore, stored: list[Connection]) -> None:
    page = state.connection_pages.page(tenant="t1", limit=100)
    assert page.total == 11 and page.next is None and page.previous is None
    assert [x.connection.id for x in page.items] == [c.id for c in stored if c.tenant == "t1"]
    nobody = state.connection_pages.page(tenant="nobody", limit=100)
    assert nobody.items == [] and nobody.total == 0
    # Past the end, the count still comes.
    last = Cursor(created_at=T0 + timedelta(days=1), id="f" * 32)
    assert state.connection_pages.page(after=last).total == 23


def test_pages_read_straight_from_psycopg_are_sqlalchemys(
    state: StateStore, stored: list[Connection]
) -> None:
    """On PostgreSQL a page's rows, and an API key's, come straight from psycopg's cursor
    (`Repository._read_rows`), unless something listens to the engine's statements: then
    SQLAlchemy runs them. Either way, every shape of page is the same, and so is every key."""
    live = state.api_keys.add("live", "byob_key_live", now=T0)
    state.api_keys.add("gone", "byob_key_gone", now=T0)
    state.api_keys.revoke("gone", now=T0)

    def every_shape() -> list[Any]:
        pages = state.connection_pages
        first = pages.page(limit=4)
        assert first.next is not None
        middle = Cursor.decode(first.next, field="after")
        # Aware but not UTC: bound as SQLAlchemy binds it, in UTC.
        elsewhere = replace(
            middle, created_at=middle.created_at.astimezone(timezone(timedelta(hours=5)))
        )
        return [
            first,
            pages.page(after=middle, limit=4),
            pages.page(after=elsewhere, limit=4),
            pages.page(before=middle, limit=4),
            pages.page(tenant="t1", limit=3),
            pages.page(tenant="t1", after=middle, limit=3),
            pages.page(tenant="nobody"),
            pages.one(stored[0].id),
            pages.one(stored[5].id),
            pages.one("0" * 32 + "x"),
            state.api_keys.find("byob_key_live"),
            state.api_keys.find("byob_key_gone"),
            state.api_keys.is_live(live.id),
            state.api_keys.is_live("nope"),
        ]

    direct = every_shape()
    assert direct[-4:] == [live, None, True, False]
    statements(state)  # a listener: SQLAlchemy's way
    assert every_shape() == direct


def test_a_cursor_byob_did_not_hand_out_is_refused() -> None:
    for token in (
        "",
        "!!!",
        "bm9wZQ",
        Cursor(created_at=T0, id="a" * 32).encode()[:-3],
        Cursor(created_at=T0, id="x" * 32).encode(),
        # Times at either end of the calendar, which cannot be moved to UTC.
        base64.urlsafe_b64encode(f"0001-01-01T00:00:00+05:00|{'a' * 32}".encode()).decode(),
        base64.urlsafe_b64encode(f"9999-12-31T23:59:59-05:00|{'a' * 32}".encode()).decode(),
    ):
        with pytest.raises(InvalidFieldError) as caught:
            Cursor.decode(token, field="after")
        assert caught.value.field == "after"
    cursor = Cursor(created_at=T0 + timedelta(microseconds=7), id="a" * 32)
    assert Cursor.decode(cursor.encode(), field="after") == cursor


def test_transfers_page_newest_first_both_ways(state: StateStore, stored: list[Connection]) -> None:
    conn = stored[1]
    planned = [
        state.transfers.plan(
            connection_id=conn.id,
            model="m",
            kind=TransferType.INCREMENTAL,
            window=Window(low=None, high=T0),
            started_at=T0,
            now=T0 + timedelta(seconds=i // 2),  # pairs share a creation time
        ).id
        for i in range(7)
    ]
    newest_first = [
        r.id
        for r in sorted(
            (state.transfers.get(t) for t in planned),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
    ]
    seen, after = [], None
    while True:
        page = state.transfers.page(TransferFilter(connection_id=conn.id), after=after, limit=3)
        assert page.total == 7
        seen += [r.id for r in page.items]
        if page.next is None:
            break
        after = Cursor.decode(page.next, field="after")
    assert seen == newest_first
    back = state.transfers.page(
        TransferFilter(connection_id=conn.id),
        before=Cursor.decode(page.previous or "", field="b"),
        limit=3,
    )
    assert [r.id for r in back.items] == newest_first[3:6]
    assert state.transfers.history(conn.id, limit=2) == [
        state.transfers.get(t) for t in newest_first[:2]
    ]


def test_a_write_about_a_connection_deleted_meanwhile_says_so(state: StateStore) -> None:
    """A validation (or transfer) finishing after its connection was deleted fails its foreign
    key: told as the connection not being there, not as the driver's SQL and parameters."""
    orphan = Validation(
        connection_id="f" * 32, fingerprint="x", passed=True, checks=[], created_at=T0
    )
    with pytest.raises(NotFoundError) as caught:
        state.validations.add(orphan)
    assert "deleted meanwhile" in caught.value.message and "INSERT" not in caught.value.message
    with pytest.raises(NotFoundError), state.atomic() as tx:
        tx.validations.add(orphan)
