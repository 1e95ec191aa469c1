"""The `byob` command line."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from byob.cli import output
from byob.errors import ByobError

app = typer.Typer(
    name="byob",
    help="Deliver each tenant's rows into storage the tenant owns.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
connections_app = typer.Typer(
    help="Destinations: create, validate, activate.", no_args_is_help=True
)
transfers_app = typer.Typer(help="Run and inspect transfers.", no_args_is_help=True)
models_app = typer.Typer(help="The models file.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")
app.add_typer(transfers_app, name="transfers")
app.add_typer(models_app, name="models")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
_state: dict[str, Any] = {"verbose": False, "config": None}


@app.callback()
def main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Models file (TOML); or BYOB_CONFIG.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
) -> None:
    _state["config"] = config
    _state["verbose"] = verbose


def build_app() -> Any:
    """The application, from BYOB_* settings and the --config option; schema migrated."""
    from byob.app import Byob
    from byob.settings import load_settings

    settings = load_settings(config=_state["config"])
    byob = Byob(settings)
    byob.migrate()
    return byob


from byob.cli import access as _access  # noqa: E402,F401 - registers commands
from byob.cli import connections as _connections  # noqa: E402,F401
from byob.cli import demo as _demo  # noqa: E402,F401
from byob.cli import transfers as _transfers  # noqa: E402,F401


def run() -> None:
    """Entry point: every error is one clear line and exit status 1."""
    try:
        # Without standalone mode, click returns the code of `raise typer.Exit(n)`.
        code = app(standalone_mode=False)
    except ByobError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        field = escape(f" [{exc.field}]") if exc.field else ""
        output.errors.print(
            f"[bold red]error{field}:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        output.errors.print("aborted")
        sys.exit(130)
    except Exception as exc:  # the one place unexpected errors are reported
        # Usage errors come from the click that typer bundles; match them by shape.
        if hasattr(exc, "exit_code") and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            sys.exit(exc.exit_code)
        if _state["verbose"]:
            traceback.print_exc()
        output.errors.print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(run with -v for details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
