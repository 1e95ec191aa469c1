"""The scheduler, driven through an injected clock (no sleeps): UTC-aligned slots fire once
each, only for active and healthy connections, and two schedulers on one state store (two
`byob serve` processes) dispatch each slot once. On SQLite and on PostgreSQL state stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byob.container import Byob
from byob.domain.connections import Connection
from byob.errors import DestinationError
from byob.services import Services
from byob.workers.scheduler import Scheduler
from tests.integration.scheduling.helpers import FakeClock, at
from tests.support import create, make_services, validate, write_config

pytestmark = pytest.mark.integration

FREQUENCIES = {"quarterly": 15, "hourly": 60, "daily": 1440}


class Recorder:
    """A dispatch that records (connection, clock time) instead of running transfers."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, conn: Connection) -> None:
        with self._lock:
            self.calls.append((conn.name, self.clock()))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(name for name, _ in self.calls)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state store: SQLite (embedded default) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return str(request.getfixturevalue("state_pg_url"))


def _app(tmp_path: Path, state_url: str) -> Services:
    # The scheduler never reads the source: the models file only has to exist.
    config = write_config(tmp_path / "byob.toml", f"sqlite:///{tmp_path / 'source.sqlite'}", [])
    return make_services(tmp_path, config, database_url=state_url)


@pytest.fixture
def app(tmp_path: Path, state_url: str) -> Iterator[Byob]:
    byob = _app(tmp_path, state_url)
    yield byob
    byob.adapters.close()


def _local(
    app: Services, tmp_path: Path, name: str, *, frequency: int = 15, activate: bool = True
) -> Connection:
    conn = create(app, name=name, tenant="acme", type="local", path=str(tmp_path / "out" / name))
    app.connections.update(name, {"frequency_minutes": frequency}, actor="cli")
    if activate:
        _, checks = validate(app, name)
        assert all(c.outcome.value in ("passed", "warning") for c in checks), [
            c.as_dict() for c in checks
        ]
        conn = app.connections.activate(name, actor="cli")
    return app.connections.get(conn.id)


def test_slots_fire_at_aligned_utc_times_once_each(app: Services, tmp_path: Path) -> None:
    for name, frequency in FREQUENCIES.items():
        conn = _local(app, tmp_path, name, frequency=frequency)
        assert conn.status.value == "active" and conn.frequency_minutes == frequency
    clock = FakeClock(at("2026-11-22T10:07:00"))
    dispatch = Recorder(clock)
    scheduler = Scheduler(app, dispatch, clock=clock)

    # Newly active: the current slot of each has not run yet, so all three run now (late).
    assert sorted(scheduler.tick()) == ["daily", "hourly", "quarterly"]
    assert dispatch.names() == ["daily", "hourly", "quarterly"]
    assert {n: app.connections.get(n).last_slot for n in FREQUENCIES} == {
        "quarterly": at("2026-11-22T10:00:00"),
        "hourly": at("2026-11-22T10:00:00"),
        "daily": at("2026-11-22T00:00:00"),
    }

    expected = [
        ("2026-11-22T10:07:30", []),  # same slots: nothing twice
        ("2026-11-22T10:14:59", []),
        ("2026-11-22T10:15:00", ["quarterly"]),
        ("2026-11-22T10:15:00", []),  # the same instant again
        ("2026-11-22T10:59:00", ["quarterly"]),  # the 10:45 slot
        ("2026-11-22T11:00:00", ["hourly", "quarterly"]),
        ("2026-11-22T11:00:01", []),
        ("2026-11-23T00:00:00", ["daily", "hourly", "quarterly"]),  # missed slots run once
        ("2026-11-23T00:14:59.999999", []),
    ]
    for when, names in expected:
        clock.set(when)
        dispatch.clear()
        assert sorted(scheduler.tick()) == names, when
        assert dispatch.names() == names, when
        assert all(t == clock() for _, t in dispatch.calls)
    assert {n: app.connections.get(n).last_slot for n in FREQUENCIES} == {
        "quarterly": at("2026-11-23T00:00:00"),
        "hourly": at("2026-11-23T00:00:00"),
        "daily": at("2026-11-23T00:00:00"),
    }


class Stopped(BaseException):
    """The scheduler's process stopping mid-dispatch (no ``except Exception`` catches it)."""


def test_a_slot_whose_scheduler_stopped_before_queueing_it_is_queued_minutes_later(
    app: Services, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        _local(app, tmp_path, name, frequency=60)
    clock = FakeClock(at("2026-11-22T10:07:00"))
    dispatch = Recorder(clock)

    def stops(conn: Connection) -> None:
        raise Stopped

    with pytest.raises(Stopped):  # claimed both slots, queued neither
        Scheduler(app, stops, clock=clock).tick()
    assert {app.connections.get(n).last_slot for n in "ab"} == {at("2026-11-22T10:00:00")}

    scheduler = Scheduler(app, dispatch, clock=clock)
    clock.set("2026-11-22T10:11:59")  # not yet: it may still be queueing them
    assert scheduler.tick() == [] and dispatch.names() == []
    clock.set("2026-11-22T10:13:00")  # a look a minute on
    scheduler.tick()
    assert dispatch.names() == ["a", "b"]  # queued after all, once each
    dispatch.clear()
    clock.set("2026-11-22T10:30:00")
    assert scheduler.tick() == [] and dispatch.names() == []  # the claims are settled
    clock.set("2026-11-22T11:00:00")
    assert sorted(scheduler.tick()) == ["a", "b"]  # and the next slot comes as usual


def test_a_dispatch_that_was_not_settled_is_dispatched_again_once(
    app: Services, tmp_path: Path
) -> None:
    _local(app, tmp_path, "a", frequency=60)
    paused = _local(app, tmp_path, "p", frequency=60)
    clock = FakeClock(at("2026-11-22T10:07:00"))
    dispatch = Recorder(clock)
    scheduler = Scheduler(app, dispatch, clock=clock)
    connections = app.adapters.state.connections
    settle = connections.settle_claims
    connections.settle_claims = lambda records: None  # type: ignore[method-assign]
    assert sorted(scheduler.tick()) == ["a", "p"]  # queued, but never said so
    connections.settle_claims = settle  # type: ignore[method-assign]
    app.connections.pause(paused.name, actor="cli")
    dispatch.clear()
    clock.set("2026-11-22T10:13:00")
    # Queued again (the queue tells a model already waiting from a new one); the paused
    # connection not, and its claim is settled all the same.
    assert scheduler.tick() == ["a"] and dispatch.names() == ["a"]
    dispatch.clear()
    clock.set("2026-11-22T10:20:00")
    assert scheduler.tick() == [] and dispatch.names() == []
    assert connections.unsettled_claims(claimed_before=clock()) == []


def test_paused_draft_and_failing_connections_are_never_dispatched(
    app: Services, tmp_path: Path
) -> None:
    _local(app, tmp_path, "healthy")
    _local(app, tmp_path, "paused")
    app.connections.pause("paused", actor="cli")
    _local(app, tmp_path, "draft", activate=False)
    _local(app, tmp_path, "failing")
    app.connections.mark_failing(
        app.connections.get("failing"), check="transfer", message="AccessDenied on PutObject"
    )
    assert app.connections.get("draft").status.value == "draft"

    clock = FakeClock(at("2026-11-22T10:07:00"))
    dispatch = Recorder(clock)
    scheduler = Scheduler(app, dispatch, clock=clock)
    for when in (
        "2026-11-22T10:07:00",
        "2026-11-22T10:15:00",
        "2026-11-22T11:00:00",
        "2026-11-23T00:00:00",
    ):
        clock.set(when)
        assert scheduler.tick() == ["healthy"], when
    assert dispatch.names() == ["healthy"] * 4
    for name in ("paused", "draft", "failing"):
        assert app.connections.get(name).last_slot is None, name

    # A passing validation clears failing: the next slot runs it again.
    conn, _ = validate(app, "failing")
    assert conn.failing_check is None
    clock.set("2026-11-23T00:15:00")
    assert sorted(scheduler.tick()) == ["failing", "healthy"]


def test_a_failing_dispatch_does_not_stop_the_others(app: Services, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _local(app, tmp_path, name)
    clock = FakeClock(at("2026-11-22T10:07:00"))
    seen: list[str] = []

    def dispatch(conn: Connection) -> None:
        seen.append(conn.name)
        if conn.name == "b":
            raise DestinationError("queue unavailable")

    assert sorted(Scheduler(app, dispatch, clock=clock).tick()) == ["a", "c"]
    assert sorted(seen) == ["a", "b", "c"]


def _tick(
    scheduler: Scheduler, results: list[list[str]], i: int, errors: list[BaseException]
) -> None:
    try:
        results[i] = scheduler.tick()
    except BaseException as exc:  # reported by the caller
        errors.append(exc)


def test_two_schedulers_at_the_same_instant_dispatch_each_slot_once(
    app: Services, tmp_path: Path, state_url: str
) -> None:
    for name, frequency in FREQUENCIES.items():
        _local(app, tmp_path, name, frequency=frequency)
    other = _app(tmp_path, state_url)  # a second `byob serve` on the same state store
    clock = FakeClock(at("2026-11-22T10:07:00"))
    dispatch = Recorder(clock)  # shared: counts dispatches of both schedulers together
    schedulers = [Scheduler(app, dispatch, clock=clock), Scheduler(other, dispatch, clock=clock)]

    # Both read the due connections before either claims a slot: only compare-and-set on the
    # slot keeps them from both dispatching.
    barrier = threading.Barrier(2, timeout=30)
    for byob in (app, other):
        read = byob.adapters.state.connections.schedulable

        def schedulable(now: Any, read: Any = read, **page: Any) -> list[Connection]:
            due = read(now, **page)
            barrier.wait()
            return due

        byob.adapters.state.connections.schedulable = schedulable  # type: ignore[method-assign]

    try:
        for when, names in [
            ("2026-11-22T10:07:00", ["daily", "hourly", "quarterly"]),
            ("2026-11-22T10:15:00", ["quarterly"]),
            ("2026-11-22T11:00:00", ["hourly", "quarterly"]),
            ("2026-11-23T00:00:00", ["daily", "hourly", "quarterly"]),
        ]:
            clock.set(when)
            dispatch.clear()
            results: list[list[str]] = [[], []]
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_tick, args=(schedulers[i], results, i, errors))
                for i in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not errors, errors
            assert dispatch.names() == names, when
            assert sorted(results[0] + results[1]) == names, when
    finally:
        other.adapters.close()
