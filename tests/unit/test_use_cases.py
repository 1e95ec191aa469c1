"""The use cases on the embedded state store (SQLite in a temporary directory): what commits
together commits together, and what fails leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byob.container import Byob
from byob.domain.connections import Status
from byob.domain.credentials import parse_lifetime
from byob.domain.transfers import TransferStatus
from byob.errors import ConfigError, ConflictError
from byob.services import Services
from byob.services.principals import Principal
from byob.settings import load_settings
from tests.support import free_port

PRINCIPAL = "arn:aws:iam::123456789012:role/byob"
S3 = {
    "name": "c1",
    "tenant": "acme",
    "type": "s3",
    "account_id": "210987654321",
    "bucket": "bkt",
    "region": "us-east-1",
}


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Byob] = []

    def make(**settings: Any) -> Services:
        options = {"home": tmp_path / ".byob", "settle_lag_seconds": 0} | settings
        byob = Byob(load_settings(**options))
        byob.migrate()
        made.append(byob)
        return Services(byob)

    yield make
    for byob in made:
        byob.close()


def audit(services: Services) -> list[str]:
    return [e["action"] for e in services.adapters.state.audit.recent()]


def test_a_create_that_fails_on_byobs_own_identity_saves_nothing(make: Any) -> None:
    # byob cannot tell its own AWS principal (nothing answers at the endpoint): the trust
    # policy cannot be written, so the connection is not created at all.
    unreachable = make(aws_endpoint_url=f"http://127.0.0.1:{free_port()}", aws_max_attempts=1)
    with pytest.raises(ConfigError, match="BYOB_SERVICE_PRINCIPAL_ARN"):
        unreachable.connections.create(actor="cli", **S3)
    assert unreachable.connections.all() == [] and audit(unreachable) == []

    # Once byob knows who it is, the same name is free: the retry succeeds.
    services = make(service_principal_arn=PRINCIPAL)
    created = services.connections.create(actor="cli", **S3)
    assert created.policies["trust_policy"]["Statement"][0]["Principal"] == {"AWS": PRINCIPAL}
    assert [c.name for c in services.connections.all()] == ["c1"]
    assert audit(services) == ["connection.create"]


def _link_connection(services: Services, tmp_path: Path) -> tuple[Any, Principal]:
    link, _ = services.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli")
    holder = Principal(actor=f"link:{link.id}", link=link)
    services.links.create_connection(holder, {"name": "c1", "type": "s3", **_where()}, None)
    return services.links.links.get(link.id), holder


def _where() -> dict[str, str]:
    return {k: v for k, v in S3.items() if k in ("account_id", "bucket", "region")}


def _validated(services: Services) -> None:
    """A passing validation of the connection's present settings, as the checks record it."""
    from byob.destinations.checks import CheckResult, Outcome

    conn = services.connections.get("c1")
    passing = [
        CheckResult(name="assume_role", outcome=Outcome.PASSED, message="ok", at=conn.created_at)
    ]
    services.adapters.checks = lambda _conn: type("Checks", (), {"run": lambda self: passing})()  # type: ignore[method-assign]
    assert services.connections.validate("c1", actor="cli").passed


def test_activation_spends_the_link_whoever_activates(make: Any, tmp_path: Path) -> None:
    services = make(service_principal_arn=PRINCIPAL)
    link, _ = _link_connection(services, tmp_path)
    assert link.connection_id is not None and link.spent_at is None
    _validated(services)

    active = services.connections.activate("c1", actor="cli")  # the operator, from the CLI

    assert active.status is Status.ACTIVE
    assert services.links.links.get(link.id).spent_at is not None
    [entry] = [
        e for e in services.adapters.state.audit.recent() if e["action"] == "connection.activate"
    ]
    assert entry["actor"] == "cli" and entry["changes"]["link_spent"] == [link.id]


def test_an_activation_whose_audit_entry_fails_activates_nothing_and_spends_nothing(
    make: Any, tmp_path: Path
) -> None:
    services = make(service_principal_arn=PRINCIPAL)
    link, _ = _link_connection(services, tmp_path)
    _validated(services)
    state = services.adapters.state
    atomic = state.atomic

    def failing_atomic() -> Any:
        from contextlib import contextmanager

        @contextmanager
        def tx() -> Iterator[Any]:
            with atomic() as inner:

                def refuse(**_: Any) -> None:
                    raise RuntimeError("the audit log is full")

                inner.audit.record = refuse  # type: ignore[method-assign]
                yield inner

        return tx()

    state.atomic = failing_atomic  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="audit log is full"):
        services.connections.activate("c1", actor="cli")
    state.atomic = atomic  # type: ignore[method-assign]

    assert services.connections.get("c1").status is Status.DRAFT
    assert services.links.links.get(link.id).spent_at is None


def test_a_link_makes_one_connection_and_a_second_create_leaves_nothing(
    make: Any, tmp_path: Path
) -> None:
    services = make(service_principal_arn=PRINCIPAL)
    _, holder = _link_connection(services, tmp_path)
    # A second request that read the link before the first attached it (a race): the attach
    # fails inside the creating transaction, so its connection is never saved.
    with pytest.raises(ConflictError, match="already created its connection"):
        services.connections.create(
            actor=holder.actor, link=holder.link, name="c2", type="s3", **_where()
        )
    assert [c.name for c in services.connections.all()] == ["c1"]
    assert audit(services).count("connection.create") == 1


def test_run_all_goes_on_past_a_connection_that_fails_and_reports_it(
    make: Any, tmp_path: Path
) -> None:
    import sqlite3

    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as db:
        db.execute(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT, updated_at TIMESTAMPTZ)"
        )
        db.executemany(
            "INSERT INTO invoices VALUES (?, ?, '2026-01-01 00:00:00.000000')",
            [(i, "acme" if i % 2 else "globex") for i in range(1, 11)],
        )
    models = tmp_path / "byob.toml"
    models.write_text(
        f'[source]\npath = "{source}"\n[[models]]\nname = "invoices"\ntable = "invoices"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\nprimary_key = ["id"]\n'
    )
    services = make(config=models)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the destination directory should be")
    for name, tenant, path in (("good", "acme", tmp_path / "out"), ("bad", "globex", blocked)):
        services.connections.create(
            actor="cli", name=name, tenant=tenant, type="local", path=str(path)
        )
        assert services.connections.validate(name, actor="cli").passed or name == "bad"
    services.connections.activate("good", actor="cli")
    # The bad one passed no validation; activate it as if its directory went away after.
    bad = services.connections.get("bad")
    services.adapters.state.connections.save(type(bad)(**{**bad.__dict__, "status": Status.ACTIVE}))

    outcome = services.transfers.run_all(parallel=2)

    assert sorted(c.name for c in outcome.connections) == ["bad", "good"]
    assert [(c.name, r.record.rows) for c, r in outcome.results] == [("good", 5)]
    [(failed, error)] = outcome.failures
    assert failed.name == "bad" and "not-a-directory" in error.message


def test_a_window_planned_by_a_process_that_died_is_run_again(make: Any, tmp_path: Path) -> None:
    import sqlite3
    from datetime import timedelta

    from byob.workers.local import LocalWorkers

    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as db:
        db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, tenant_id TEXT, updated_at TIMESTAMPTZ)"
        )
        db.execute("INSERT INTO t VALUES (1, 'acme', '2026-01-01 00:00:00.000000')")
    models = tmp_path / "byob.toml"
    models.write_text(
        f'[source]\npath = "{source}"\n[[models]]\nname = "t"\ntable = "t"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\nprimary_key = ["id"]\n'
    )
    services = make(config=models)
    services.connections.create(
        actor="cli", name="c1", tenant="acme", type="local", path=str(tmp_path / "out")
    )
    services.connections.validate("c1", actor="cli")
    conn = services.connections.activate("c1", actor="cli")
    # A process fixed the window, then died before running it.
    [stranded] = services.transfers.plan(conn, "t")
    assert services.schedules.requeue_stranded() == []  # not yet: it may still be starting

    workers = LocalWorkers(services, sleep=lambda _: None)
    services.transfers.dispatcher = workers
    try:
        later = services.now() + timedelta(minutes=11)
        assert services.schedules.requeue_stranded(now=later) == [stranded.id]
        for future in list(workers.futures):
            future.result(timeout=60)
    finally:
        workers.shutdown()
    done = services.transfers.get(stranded.id)
    assert done.status is TransferStatus.SUCCEEDED and done.rows == 1


def test_connection_names_are_per_tenant_and_an_ambiguous_name_asks_for_more(
    make: Any, tmp_path: Path
) -> None:
    services = make(service_principal_arn=PRINCIPAL)
    for tenant in ("acme", "globex"):
        services.connections.create(
            actor="cli", name="billing", tenant=tenant, type="local", path=str(tmp_path / tenant)
        )
    with pytest.raises(ConflictError, match="tenant 'acme' already has a connection named"):
        services.connections.create(
            actor="cli", name="billing", tenant="acme", type="local", path=str(tmp_path)
        )
    with pytest.raises(ConflictError) as ambiguous:
        services.connections.get("billing")
    assert "give its ID or tenant/name" in ambiguous.value.message
    acme = services.connections.get("acme/billing")
    assert acme.tenant == "acme" and services.connections.get(acme.id) == acme
    assert services.connections.get("globex/billing").tenant == "globex"


def test_whole_lists_are_read_a_page_at_a_time_to_the_end(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from byob.domain import paging

    monkeypatch.setattr(paging, "EVERY_PAGE", 2)  # five rows: three pages
    services = make(service_principal_arn=PRINCIPAL)
    for i in range(5):
        services.connections.create(actor="cli", **(S3 | {"name": f"c{i}"}))
        services.links.create("acme", lifetime=parse_lifetime("7d"), actor="cli")
    assert [v["name"] for v in services.connections.every_view()] == [f"c{i}" for i in range(5)]
    assert len({link.id for link in services.links.every()}) == 5
    assert services.connections.every_view(tenant="nobody") == []
