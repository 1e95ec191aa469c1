"""The command line imports only the modules of the command it runs (start-up time)."""

from __future__ import annotations

import subprocess
import sys

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
