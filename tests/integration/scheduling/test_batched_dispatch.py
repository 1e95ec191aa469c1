"""The scheduler on the distributed queue dispatches in pages: a page's slots claimed in one
statement, its jobs deferred in one batch. Two schedulers racing over the same pages queue
each connection once; a page whose batch the queue refuses gives its slots back; a model
already waiting is not queued twice. On a PostgreSQL state store with Procrastinate."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
import sqlalchemy as sa

from byob.domain.connections import Status, new_connection
from byob.services import Services, schedules
from byob.store.repository import new_id
from byob.workers import queue as q
from byob.workers.scheduler import Scheduler
from tests.integration.scheduling.helpers import MODEL, FakeClock, at
from tests.support import make_services, write_config

pytestmark = pytest.mark.integration

REFUNDS = MODEL | {"name": "refunds"}
MODELS = ("invoices", "refunds")
CONNECTIONS = 25
PAGE = 7  # so 25 connections take four pages


def _services(tmp_path: Path, state_url: str) -> Services:
    # The scheduler never reads the source: the models file only has to name the models.
    config = write_config(
        tmp_path / "byob.toml", f"sqlite:///{tmp_path / 'source.sqlite'}", [MODEL, REFUNDS]
    )
    return make_services(tmp_path, config, database_url=state_url)


@dataclasses.dataclass
class Queue:
    app: Services
    jobs: procrastinate.App
    url: str
    tmp_path: Path

    def scheduler(self, app: Services | None = None) -> tuple[Scheduler, q.QueueDispatcher]:
        """A scheduler dispatching to the queue, as `byob serve` in production mode."""
        app = app or self.app
        dispatcher = q.QueueDispatcher(app, q.make_queue(self.url))
        app.transfers.dispatcher = dispatcher
        return Scheduler(app, clock=FakeClock(at("2026-11-22T10:07:00"))), dispatcher


@pytest.fixture
def queue(tmp_path: Path, state_pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    monkeypatch.setattr(schedules, "PAGE", PAGE)
    app = _services(tmp_path, state_pg_url)
    jobs = q.make_queue(state_pg_url)
    q.ensure_schema(jobs, app.adapters.state)
    now = at("2026-11-22T09:00:00")
    for i in range(CONNECTIONS):
        conn = new_connection(
            id=new_id(),
            name=f"c{i:02}",
            tenant="acme",
            type="local",
            path=str(tmp_path / "out" / f"c{i}"),
            frequency_minutes=15,
            now=now,
        )
        app.adapters.state.connections.add(dataclasses.replace(conn, status=Status.ACTIVE))
    with jobs.open():
        yield Queue(app=app, jobs=jobs, url=state_pg_url, tmp_path=tmp_path)
    app.adapters.close()


def _queued(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT queueing_lock FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'",
            (q.QUEUE,),
        ).fetchall()
    return sorted(str(lock) for (lock,) in rows)


def _every_job(app: Services) -> list[str]:
    return sorted(
        q.lock_of(c.id, model) for c in app.adapters.state.connections.all() for model in MODELS
    )


def _tick(
    scheduler: Scheduler, results: list[list[str]], i: int, errors: list[BaseException]
) -> None:
    try:
        results[i] = scheduler.tick()
    except BaseException as exc:  # reported by the caller
        errors.append(exc)


def test_one_tick_queues_every_model_of_every_due_connection_once(queue: Queue) -> None:
    scheduler, dispatcher = queue.scheduler()
    try:
        assert sorted(scheduler.tick()) == [f"c{i:02}" for i in range(CONNECTIONS)]
        assert scheduler.tick() == []  # the same slot never twice
    finally:
        dispatcher.shutdown()
    assert _queued(queue.url) == _every_job(queue.app)
    slots = {c.last_slot for c in queue.app.adapters.state.connections.all()}
    assert slots == {at("2026-11-22T10:00:00")}


def test_two_schedulers_racing_over_the_same_pages_queue_each_connection_once(queue: Queue) -> None:
    other = _services(queue.tmp_path, queue.url)  # a second `byob serve`
    (first, one), (second, two) = queue.scheduler(), queue.scheduler(other)
    # Both read the first page before either claims it: only the claim keeps them apart.
    barrier = threading.Barrier(2, timeout=30)
    for app in (queue.app, other):
        read = app.adapters.state.connections.schedulable
        calls = [0]

        def schedulable(*args: Any, read: Any = read, calls: list[int] = calls, **kw: Any) -> Any:
            page = read(*args, **kw)
            calls[0] += 1
            if calls[0] == 1:
                barrier.wait()
            return page

        app.adapters.state.connections.schedulable = schedulable  # type: ignore[method-assign]
    results: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_tick, args=(s, results, i, errors))
        for i, s in enumerate((first, second))
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        one.shutdown()
        two.shutdown()
        other.adapters.close()
    assert not errors, errors
    assert sorted(results[0] + results[1]) == [f"c{i:02}" for i in range(CONNECTIONS)]
    assert _queued(queue.url) == _every_job(queue.app)


def test_a_page_whose_batch_the_queue_refuses_gives_its_slots_back(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_jobs = queue.app.adapters.state.queue_jobs
    defer = queue_jobs.defer
    batches = [0]

    def flaky(**kw: Any) -> bool:
        batches[0] += 1
        if batches[0] == 2:
            raise sa.exc.OperationalError("SELECT procrastinate_defer_jobs_v1", {}, OSError())
        return defer(**kw)

    monkeypatch.setattr(queue_jobs, "defer", flaky)
    scheduler, dispatcher = queue.scheduler()
    ordered = sorted(queue.app.adapters.state.connections.all(), key=lambda c: c.id)
    refused = {c.name for c in ordered[PAGE : 2 * PAGE]}
    try:
        dispatched = scheduler.tick()
        assert len(dispatched) == CONNECTIONS - PAGE and not refused & set(dispatched)
        for conn in queue.app.adapters.state.connections.all():
            assert (conn.last_slot is None) == (conn.name in refused), conn.name
        # The next tick in the same slot takes the refused page, and only it.
        assert sorted(scheduler.tick()) == sorted(refused)
        assert scheduler.tick() == []
    finally:
        dispatcher.shutdown()
    assert _queued(queue.url) == _every_job(queue.app)


def test_a_model_already_waiting_is_not_queued_twice(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    conns = sorted(queue.app.adapters.state.connections.all(), key=lambda c: c.id)
    # A manual run of one model waits already; another is queued between the scheduler's
    # look at the queue and its batch (which is then refused whole, and taken one by one).
    assert q.defer_transfer(queue.jobs, conns[0], "invoices")
    late = conns[PAGE + 1]
    queued_locks = queue.app.adapters.state.queue_jobs.queued_locks

    def look(locks: list[str]) -> set[str]:
        found = queued_locks(locks)
        if q.lock_of(late.id, "refunds") in locks:
            assert q.defer_transfer(queue.jobs, late, "refunds")
        return found

    monkeypatch.setattr(queue.app.adapters.state.queue_jobs, "queued_locks", look)
    scheduler, dispatcher = queue.scheduler()
    try:
        assert len(scheduler.tick()) == CONNECTIONS
    finally:
        dispatcher.shutdown()
    assert _queued(queue.url) == _every_job(queue.app)  # each once


class Stopped(BaseException):
    """The scheduler's process stopping mid-dispatch (no ``except Exception`` catches it)."""


def test_pages_claimed_by_a_scheduler_that_stopped_are_queued_minutes_later_once(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduler stops after claiming its second page, before queueing it; the next one
    to start stops after queueing its first page, before settling it. A later look queues
    the first's lost page and tells the second's, waiting already, from new models."""
    queue_jobs = queue.app.adapters.state.queue_jobs
    connections = queue.app.adapters.state.connections
    defer, settle = queue_jobs.defer, connections.settle_claims
    stop = {"defer": 2, "settle": 0}  # the call that stops the process, counted down
    ordered = sorted(connections.all(), key=lambda c: c.id)
    pages = [{c.name for c in ordered[i : i + PAGE]} for i in range(0, CONNECTIONS, PAGE)]

    def stopping(name: str, call: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            stop[name] -= 1
            if stop[name] == 0:
                raise Stopped
            return call(*args, **kw)

        return wrapper

    monkeypatch.setattr(queue_jobs, "defer", stopping("defer", defer))
    monkeypatch.setattr(connections, "settle_claims", stopping("settle", settle))
    scheduler, dispatcher = queue.scheduler()
    clock = scheduler.clock
    assert isinstance(clock, FakeClock)
    try:
        with pytest.raises(Stopped):  # page 1 queued; page 2 claimed, never queued
            scheduler.tick()
        stop["settle"] = 1
        with pytest.raises(Stopped):  # page 3 queued, never settled
            scheduler.tick()
        assert len(_queued(queue.url)) == 2 * PAGE * len(MODELS)
        clock.set("2026-11-22T10:13:00")
        dispatched = set(scheduler.tick())
        assert dispatched == pages[1] | pages[2] | pages[3]  # 4 as due; 2 and 3 again
        clock.set("2026-11-22T10:14:59")  # the last look settled them all
        assert scheduler.tick() == []
    finally:
        dispatcher.shutdown()
    assert _queued(queue.url) == _every_job(queue.app)  # each model of each once
