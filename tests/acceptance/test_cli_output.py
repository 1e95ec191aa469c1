"""The real `byob` command in subprocesses, for what an operator reads: IDs by a unique start,
records shown as panels, errors under --json, a taken port, a link that points nowhere. On the
embedded default (SQLite state, a SQLite source, local destinations): no database server."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from byob.domain.connections import AuthKind, Connection, ConnectionType
from byob.domain.credentials import LINK_PREFIX, Link, new_token
from byob.store import tables as T
from tests.support import free_port, make_services, serving

pytestmark = pytest.mark.acceptance

BYOB = [sys.executable, "-m", "byob.cli"]
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BYOB, *args], env=env, capture_output=True, text=True, timeout=300)


def panel(text: str) -> list[str]:
    """The rows of a Rich panel, each as "label value" with runs of spaces made one."""
    rows = [line.strip("│╭╮╰╯─ ") for line in text.splitlines() if line.startswith("│")]
    return [" ".join(row.split()) for row in rows]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as db:
        db.execute(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT, updated_at TIMESTAMPTZ)"
        )
        db.executemany(
            "INSERT INTO invoices VALUES (?, 'acme', '2026-01-01 00:00:00.000000')",
            [(i,) for i in range(1, 21)],
        )
    config = tmp_path / "byob.toml"
    config.write_text(
        f'[source]\npath = "{source}"\n[[models]]\nname = "invoices"\ntable = "invoices"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\nprimary_key = ["id"]\n'
    )
    return dict(os.environ) | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_SETTLE_LAG_SECONDS": "0",
        "COLUMNS": "200",  # Rich wraps at 80 columns when not on a terminal
    }


def _id(start: str) -> str:
    return start.ljust(32, "0")


def seed(tmp_path: Path, env: dict[str, str]) -> None:
    """Records whose IDs share their starts, written through the state store the CLI reads."""
    services = make_services(tmp_path, Path(env["BYOB_CONFIG"]))
    state = services.adapters.state
    for n, start in enumerate(["beef0", "beef01", "beef02", "beef1"]):
        state.connections.add(
            Connection(
                id=_id(start),
                name=f"b{n}",
                tenant="acme",
                type=ConnectionType.LOCAL,
                auth=AuthKind.NONE,
                path=str(tmp_path / "out"),
                created_at=NOW,
                updated_at=NOW,
            )
        )
    transfer = {
        "connection_id": _id("beef1"),
        "model": "invoices",
        "type": "incremental",
        "status": "failed",
        "started_at": NOW + timedelta(seconds=5),
        "window_low": NOW - timedelta(days=1),
        "window_high": NOW,
        "rows": 1_234_567,
        "bytes": 3 * 1024 * 1024,
        "files": 2,
        "attempts": 3,
        "error": "AccessDenied: [s3:PutObject] refused",
        "created_at": NOW,
        "finished_at": NOW + timedelta(seconds=65),
    }
    with state.transfers.writing() as db:
        for start in ("cafe0", "cafe1"):
            db.execute(sa.insert(T.transfers).values(id=_id(start), **transfer))
    for start in ("f00d0", "f00d1"):
        link = Link(
            id=_id(start),
            tenant="acme",
            created_at=NOW,
            expires_at=NOW + timedelta(days=90),
            created_by="cli",
        )
        state.links.add(link, new_token(LINK_PREFIX))


def test_the_short_id_a_list_prints_names_the_transfer(env: dict[str, str], tmp_path: Path) -> None:
    services = make_services(tmp_path, Path(env["BYOB_CONFIG"]))
    services.connections.create(
        actor="cli", name="l1", tenant="acme", type="local", path=str(tmp_path / "out")
    )
    services.connections.validate("l1", actor="cli")
    services.connections.activate("l1", actor="cli")
    [ran] = services.transfers.run("l1")

    listed = byob(env, "transfers", "list", "l1")
    assert listed.returncode == 0, listed.stderr
    [short_id] = re.findall(r"│ ([0-9a-f]{12}) │", listed.stdout)
    assert short_id == ran.record.id[:12]
    shown = byob(env, "transfers", "show", short_id)
    assert shown.returncode == 0, shown.stderr
    assert f"ID {ran.record.id}" in panel(shown.stdout)


def test_an_id_start_names_one_record_or_says_why_not(env: dict[str, str], tmp_path: Path) -> None:
    seed(tmp_path, env)
    ambiguous = byob(env, "connections", "show", "beef")
    assert ambiguous.returncode == 1
    assert ambiguous.stderr == (
        "error: more than one connection has an ID starting with 'beef' "
        f"({_id('beef0')}, {_id('beef01')}, {_id('beef02')} and more); "
        "give more of its characters\n"
    )
    assert byob(env, "connections", "show", "beef0").stderr == (
        "error: more than one connection has an ID starting with 'beef0' "
        f"({_id('beef0')}, {_id('beef01')}, {_id('beef02')}); give more of its characters\n"
    )
    one = byob(env, "connections", "show", "beef1")
    assert one.returncode == 0, one.stderr
    assert "Connection b3" in one.stdout
    assert byob(env, "connections", "show", "dead").stderr == (
        "error [name]: no connection named 'dead', nor one whose ID starts with it\n"
    )

    assert byob(env, "transfers", "show", "cafe").stderr == (
        "error: more than one transfer has an ID starting with 'cafe' "
        f"({_id('cafe0')}, {_id('cafe1')}); give more of its characters\n"
    )
    assert byob(env, "transfers", "show", "dead").stderr == (
        "error: no transfer has an ID starting with 'dead'\n"
    )
    assert byob(env, "transfers", "show", "ca%e").stderr == (
        "error: no transfer 'ca%e': give its ID, or at least its first 4 characters\n"
    )

    assert byob(env, "links", "revoke", "f00d").stderr == (
        "error: more than one link has an ID starting with 'f00d' "
        f"({_id('f00d0')}, {_id('f00d1')}); give more of its characters\n"
    )
    revoked = byob(env, "links", "revoke", "f00d1")
    assert (revoked.returncode, revoked.stdout) == (0, f"Link {_id('f00d1')} revoked\n")


def test_show_prints_a_panel_not_python_values(env: dict[str, str], tmp_path: Path) -> None:
    seed(tmp_path, env)
    shown = byob(env, "transfers", "show", "cafe0")
    assert shown.returncode == 0, shown.stderr
    assert panel(shown.stdout) == [
        f"ID {_id('cafe0')}",
        "connection b3",
        "model invoices",
        "type incremental",
        "status failed",
        "window (2026-01-01 00:00:00 UTC, 2026-01-02 00:00:00 UTC]",
        "started 2026-01-02 00:00:05 UTC",
        "finished 2026-01-02 00:01:05 UTC",
        "took 60.0 s",
        "rows 1,234,567",
        "files 2",
        "size 3.0 MiB",
        "attempts 3",
        "manifest —",
        "error AccessDenied: [s3:PutObject] refused",
        "note —",
    ]
    assert shown.stdout.startswith("╭─ Transfer cafe00000000 ─")
    assert "None" not in shown.stdout and "{" not in shown.stdout
    as_json = json.loads(byob(env, "transfers", "show", "cafe0", "--json").stdout)
    assert (as_json["id"], as_json["rows"], as_json["note"], as_json["files"]) == (
        _id("cafe0"),
        1_234_567,
        None,
        [],
    )

    draft = byob(env, "connections", "show", "b0")
    assert draft.returncode == 0, draft.stderr
    assert panel(draft.stdout) == [
        f"ID {_id('beef0')}",
        "tenant acme",
        "type local",
        "direction export",
        "models every offered model (invoices)",
        "status draft",
        f"location {tmp_path / 'out'}",
        "auth none",
        "frequency every 1440 minutes",
        "next run —",
        "validated —",
        "last transfer —",
        "created 2026-01-02 00:00:00 UTC",
        "updated 2026-01-02 00:00:00 UTC",
    ]
    assert "None" not in draft.stdout
    assert (
        json.loads(byob(env, "connections", "show", "b0", "--json").stdout)["connection"][
            "next_run"
        ]
        is None
    )


def test_errors_under_json_are_a_json_body_on_stdout(env: dict[str, str]) -> None:
    missing = byob(env, "transfers", "show", "6a7e0a89cb71", "--json")
    assert (missing.returncode, missing.stderr) == (1, "")
    assert json.loads(missing.stdout) == {
        "error": {
            "code": "not_found",
            "message": "no transfer has an ID starting with '6a7e0a89cb71'",
            "field": None,
        }
    }
    refused = byob(
        env,
        "connections",
        "create",
        "--name=c",
        "--tenant=acme",
        "--account-id=12345",
        "--bucket=ok-bucket",
        "--region=us-east-1",
        "--json",
    )
    assert (refused.returncode, refused.stderr) == (1, "")
    error = json.loads(refused.stdout)["error"]
    assert (error["code"], error["field"]) == ("invalid_field", "account_id")
    assert error["message"]
    usage = byob(env, "transfers", "run", "--json")
    assert (usage.returncode, usage.stderr) == (2, "")
    assert json.loads(usage.stdout) == {
        "error": {
            "code": "usage_error",
            "message": "Invalid value: give a connection name or --all, not both or neither",
            "field": None,
        }
    }
    plain = byob(env, "transfers", "show", "6a7e0a89cb71")  # without --json: as before
    assert (plain.returncode, plain.stdout) == (1, "")
    assert plain.stderr == "error: no transfer has an ID starting with '6a7e0a89cb71'\n"


def test_serve_on_a_taken_port_says_so_in_one_line(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = byob(env, "serve", "--port", str(port))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is in use (another byob serve?); choose another "
        "with --port\n"
    )


def test_links_create_warns_when_the_public_url_reaches_no_byob(
    env: dict[str, str], tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    made = byob(env | {"BYOB_PUBLIC_URL": nowhere}, "links", "create", "--tenant=acme", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["url"].startswith(f"{nowhere}/connect/byob_link_")
    assert made.stderr == (
        f"warning: the link points at {nowhere}, where no byob server answers; set "
        "BYOB_PUBLIC_URL to the address recipients reach `byob serve` on\n"
    )
    human = byob(
        env | {"BYOB_PUBLIC_URL": f"http://localhost:{free_port()}/"},
        "links",
        "create",
        "--tenant=acme",
    )
    assert human.returncode == 0
    assert re.fullmatch(
        r"warning: the link points at http://localhost:\d+, where .*\n", human.stderr
    )

    elsewhere = byob(
        env | {"BYOB_PUBLIC_URL": "https://byob.invalid"}, "links", "create", "--tenant=acme"
    )
    assert (elsewhere.returncode, elsewhere.stderr) == (0, "")  # another host: not judged
    (tmp_path / "served").mkdir()
    with serving(tmp_path / "served") as served:
        answered = byob(
            env | {"BYOB_PUBLIC_URL": served.base_url}, "links", "create", "--tenant=acme"
        )
    assert (answered.returncode, answered.stderr) == (0, "")


def test_the_readme_says_where_byob_is_and_how_to_put_it_on_path() -> None:
    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    venv = re.search(r"^VENV := (\S+)$", (root / "Makefile").read_text(), re.MULTILINE)
    script = re.search(
        r'^(\w+) = "byob\.cli\.main:run"$', (root / "pyproject.toml").read_text(), re.MULTILINE
    )
    assert venv and script
    installed = f"{venv[1]}/bin/{script[1]}"
    assert readme.index(f"`{installed}`") < readme.index("byob models check")
    assert f"`source {venv[1]}/bin/activate`" in readme
    assert f'`export PATH="$PWD/{venv[1]}/bin:$PATH"`' in readme


def test_models_are_chosen_per_connection_on_the_command_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    common = ("connections", "create", "--tenant", "acme", "--type", "local", "--path", out)
    refused = byob(env, *common, "--name", "c0", "--models", "invoices,nope", "--json")
    assert refused.returncode != 0
    error = json.loads(refused.stdout)["error"]
    assert error["field"] == "models" and "'nope' is not an offered model" in error["message"]

    created = byob(env, *common, "--name", "c1", "--models", "invoices", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["connection"]["models"] == ["invoices"]
    assert "models invoices" in panel(byob(env, "connections", "show", "c1").stdout)

    every = byob(env, "connections", "update", "c1", "--models", "*", "--json")
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout)["connection"]["models"] is None
    assert "models every offered model (invoices)" in panel(
        byob(env, "connections", "show", "c1").stdout
    )
