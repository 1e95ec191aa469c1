"""Models per connection, on the embedded state store with a SQLite source and local
destinations: a connection receives the offered models it selects (or all of them), a
deselected model stops, one selected again starts over with a backfill, once, and every
change is audited."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from byob.container import Byob
from byob.domain.windows import TransferType
from byob.errors import InvalidFieldError
from byob.services import Services
from byob.settings import load_settings

MODELS = """
[source]
path = "{source}"

[[models]]
name = "invoices"
table = "invoices"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = ["id"]

[[models]]
name = "payments"
table = "payments"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = ["id"]

[[models]]
name = "internal"
table = "payments"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = ["id"]
offered = false
"""


def stamp(ago: timedelta) -> str:
    return (datetime.now(UTC) - ago).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.sqlite"
    with sqlite3.connect(path) as db:
        for table in ("invoices", "payments"):
            db.execute(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, tenant_id TEXT, "
                "updated_at TIMESTAMPTZ)"
            )
            db.executemany(
                f"INSERT INTO {table} VALUES (?, 'acme', ?)",
                [(i, stamp(timedelta(hours=1))) for i in range(1, 4)],
            )
    return path


@pytest.fixture
def services(tmp_path: Path, source: Path) -> Iterator[Services]:
    config = tmp_path / "byob.toml"
    config.write_text(MODELS.format(source=source))
    byob = Byob(load_settings(home=tmp_path / ".byob", config=config, settle_lag_seconds=0))
    byob.migrate()
    yield Services(byob)
    byob.close()


def local(services: Services, tmp_path: Path, **fields: Any) -> Any:
    conn = services.connections.create(
        actor="cli", name="c1", tenant="acme", type="local", path=str(tmp_path / "out"), **fields
    ).connection
    services.connections.validate(conn.name, actor="cli")
    return services.connections.activate(conn.name, actor="cli")


def ran(services: Services) -> list[tuple[str, str, int]]:
    return [
        (r.record.model, r.record.type.value, r.record.rows) for r in services.transfers.run("c1")
    ]


def test_a_connection_receives_every_offered_model_unless_it_selects(
    services: Services, tmp_path: Path
) -> None:
    conn = local(services, tmp_path)
    assert conn.models is None
    assert services.connections.received_models(conn) == ["invoices", "payments"]
    assert [m for m, _, _ in ran(services)] == ["invoices", "payments"]
    view = services.connections.view(conn)
    assert view["models"] is None


def test_a_selection_names_offered_models_only(services: Services, tmp_path: Path) -> None:
    for picked, named in ((["internal"], "'internal' is not an offered"), (["nope", "x"], "are")):
        with pytest.raises(InvalidFieldError, match=named) as refused:
            local(services, tmp_path, models=picked)
        assert refused.value.field == "models"
        assert "choose among: invoices, payments" in refused.value.message
    with pytest.raises(InvalidFieldError, match="at least one model"):
        local(services, tmp_path, models=[])
    assert services.connections.all() == []


def test_deselected_models_stop_and_a_model_selected_again_starts_with_one_backfill(
    services: Services, tmp_path: Path, source: Path
) -> None:
    conn = local(services, tmp_path, models=["invoices"])
    assert ran(services) == [("invoices", "full_refresh", 3)]
    with pytest.raises(InvalidFieldError, match="does not receive model 'payments'") as refused:
        services.transfers.run("c1", model="payments")
    assert refused.value.field == "model"

    services.connections.update("c1", {"models": ["invoices", "payments"]}, actor="op")
    assert ran(services) == [("invoices", "incremental", 0), ("payments", "full_refresh", 3)]

    services.connections.update("c1", {"models": "payments"}, actor="op")  # "a,b" as typed
    with sqlite3.connect(source) as db:  # changed while invoices is not selected
        db.execute("INSERT INTO invoices VALUES (4, 'acme', ?)", (stamp(timedelta(seconds=30)),))
    assert ran(services) == [("payments", "incremental", 0)]

    updated = services.connections.update("c1", {"models": ["*"]}, actor="op").connection
    assert updated.models is None and updated.status.value == "active"  # not a new destination
    assert ran(services) == [("invoices", "full_refresh", 4), ("payments", "incremental", 0)]
    assert ran(services) == [("invoices", "incremental", 0), ("payments", "incremental", 0)]

    changes = [
        e["changes"]
        for e in services.adapters.state.audit.recent()
        if e["action"] == "connection.update"
    ]
    assert {"models": [["invoices"], ["invoices", "payments"]], "backfill": ["payments"]} in [
        {k: v for k, v in c.items() if k in ("models", "backfill")} for c in changes
    ]
    assert {"models": [["payments"], None], "backfill": ["invoices"]} in [
        {k: v for k, v in c.items() if k in ("models", "backfill")} for c in changes
    ]
    history = services.transfers.history("c1")[1].items
    assert [t.type for t in history if t.model == "invoices"].count(TransferType.FULL_REFRESH) == 2
    assert conn.id == updated.id


def test_an_import_connection_receives_no_models(services: Services) -> None:
    with pytest.raises(InvalidFieldError):
        services.connections.create(
            actor="cli",
            name="imp",
            tenant="acme",
            type="local",
            path="/tmp/x",
            direction="import",
            import_name="usage",
        )


def test_every_offered_model_includes_one_offered_later(
    services: Services, tmp_path: Path, source: Path
) -> None:
    every = local(services, tmp_path)
    picked = services.connections.create(
        actor="cli",
        name="c2",
        tenant="acme",
        type="local",
        path=str(tmp_path / "out2"),
        models=["invoices"],
    ).connection
    later = tmp_path / "later.toml"  # the vendor offers `internal` now
    later.write_text(MODELS.format(source=source).replace("offered = false", "offered = true"))
    byob = Byob(load_settings(home=tmp_path / ".byob", config=later, settle_lag_seconds=0))
    try:
        reread = Services(byob).connections
        assert reread.received_models(reread.get(every.id)) == ["invoices", "payments", "internal"]
        assert reread.received_models(reread.get(picked.id)) == ["invoices"]
    finally:
        byob.close()
