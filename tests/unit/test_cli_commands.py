"""The command line imports only the modules of the command it runs (start-up time)."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from byob.cli.main import _command_name


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["transfers", "run", "c"], "transfers"),
        (["--config", "byob.toml", "transfers", "run", "c", "--json"], "transfers"),
        (["-c", "byob.toml", "-v", "connections", "list"], "connections"),
        (["--config=byob.toml", "--verbose", "serve"], "serve"),
        (["-cbyob.toml", "models", "check"], "models"),
        (["--help"], None),
        ([], None),
        (["--config"], None),
        (["--unknown", "transfers"], None),
    ],
)
def test_the_command_is_found_past_the_root_options(argv: list[str], command: str | None) -> None:
    assert _command_name(argv) == command


def _loaded_after(*args: str) -> set[str]:
    script = (
        "import sys\n"
        "from byob.cli import main\n"
        "main._register_commands(sys.argv[1:])\n"
        "print(' '.join(m for m in sys.modules if m.startswith('byob.cli.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, capture_output=True, text=True
    )
    return set(out.stdout.split())


def test_a_command_loads_only_its_own_module() -> None:
    loaded = _loaded_after("--config", "x.toml", "transfers", "run", "c")
    assert "byob.cli.transfers" in loaded
    assert "byob.cli.connections" not in loaded
    assert "byob.cli.server" not in loaded


def test_help_loads_every_command() -> None:
    loaded = _loaded_after("--help")
    assert {"byob.cli.connections", "byob.cli.server", "byob.cli.transfers"} <= loaded


# What `byob transfers run` of a local connection must not load (start-up time; each was
# loaded once, and a lazy import inside the code that needs it keeps it out):
NOT_LOADED_BY_A_LOCAL_TRANSFER = (
    "rich",  # only for output to a person; --json never shows it (cli/output.py)
    "alembic",  # migrations: only when the schema is behind (store/db.py)
    "boto3",  # AWS: S3 connections only
    "botocore",
    "psycopg",  # a PostgreSQL state store or direct reads only
    "sqlalchemy.dialects.postgresql",
    "fastapi",  # the web app: `byob serve` only
    "jinja2",
    "procrastinate",  # the queue: `byob worker` only
    "cryptography.hazmat.primitives.serialization",  # domain/signing.py: public_bytes_raw
    "cryptography.hazmat.primitives.ciphers",  # store/secrets.py: with the first SecretBox
    "byob.domain.imports",  # imports: only where they run
    "byob.engine.importer",
    "byob.services.api_keys",  # services/__init__.py: each service on first use
    "byob.services.webhooks",
    "byob.services.schedules",
    "byob.store.outbox",  # store/state.py: each rarer repository on first use
    "byob.store.connection_pages",
    "byob.domain.credentials",  # services/connections.py: a type only
    "byob.web",
    "byob.aws",
)

# Runs the command line and writes, to the file named first, every module it loaded and how
# the garbage collector was left.
_RUN_AND_LIST_MODULES = (
    "import atexit, gc, json, sys\n"
    "out = sys.argv.pop(1)\n"
    "def dump():\n"
    "    left = {'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count()}\n"
    "    open(out, 'w').write(json.dumps({'modules': list(sys.modules), 'gc': left}))\n"
    "atexit.register(dump)\n"
    "from byob.cli.main import run\n"
    "run()\n"
)


def test_a_local_transfer_loads_nothing_it_does_not_use(tmp_path: Path) -> None:
    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as db:
        db.execute(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT, updated_at TIMESTAMPTZ)"
        )
        db.execute("INSERT INTO invoices VALUES (1, 'acme', '2024-01-01 00:00:00.000000')")
    db.close()
    config = tmp_path / "byob.toml"
    config.write_text(
        f'[source]\npath = "{source}"\n\n[[models]]\nname = "invoices"\ntable = "invoices"\n'
        'tenant_column = "tenant_id"\ncursor_column = "updated_at"\nprimary_key = ["id"]\n'
    )
    env = {**os.environ, "BYOB_HOME": str(tmp_path / ".byob"), "BYOB_CONFIG": str(config)}
    env.pop("BYOB_DATABASE_URL", None)
    byob = [sys.executable, "-m", "byob.cli"]
    for step in (
        ["connections", "create", "--name", "c", "--tenant", "acme", "--type", "local"],
        ["connections", "validate", "c"],
        ["connections", "activate", "c"],
    ):
        path = ["--path", str(tmp_path / "out")] if step[1] == "create" else []
        subprocess.run([*byob, *step, *path, "--json"], env=env, check=True, capture_output=True)
    listed = tmp_path / "left.json"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUN_AND_LIST_MODULES,
            str(listed),
            "transfers",
            "run",
            "c",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"rows": 1' in run.stdout
    dumped = json.loads(listed.read_text())
    loaded = set(dumped["modules"])
    unwanted = {
        m
        for m in loaded
        if any(m == n or m.startswith(n + ".") for n in NOT_LOADED_BY_A_LOCAL_TRANSFER)
    }
    assert not unwanted, sorted(unwanted)
    # Start-up over (cli/root.py: started), the collector is back at its pace, start-up's
    # objects set aside.
    assert dumped["gc"]["threshold"] == list(gc.get_threshold())
    assert dumped["gc"]["frozen"] > 100_000


def test_start_up_collects_rarely_then_at_the_usual_pace() -> None:
    script = (
        "import gc\n"
        "from byob.cli import root\n"
        "usual = gc.get_threshold()\n"
        "root.started()  # not started by the entry point: nothing changes\n"
        "assert gc.get_threshold() == usual and gc.get_freeze_count() == 0\n"
        "root.collect_rarely_while_starting()\n"
        "assert gc.get_threshold() == (root.STARTUP_GC_THRESHOLD, *usual[1:])\n"
        "root.started()\n"
        "assert gc.get_threshold() == usual and gc.isenabled() and gc.get_freeze_count() > 0\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_an_unexpected_error_is_one_redacted_line_without_the_sql_after_it() -> None:
    from byob.cli.main import _first_line

    exc = RuntimeError(
        "(psycopg.errors.Oops) could not reach postgresql://byob:hunter2@db:5432/byob\n"
        "[SQL: INSERT INTO validations (connection_id) VALUES (%(connection_id)s)]\n"
        "[parameters: {'connection_id': 'abc'}]"
    )
    said = _first_line(exc)
    assert "hunter2" not in said and "INSERT" not in said and "parameters" not in said
    assert said.startswith("(psycopg.errors.Oops) could not reach")
    assert len(_first_line(ValueError("x" * 500))) == 200
