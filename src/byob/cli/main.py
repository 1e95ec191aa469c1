"""The `byob` command line: every error is reported here, in one place."""

from __future__ import annotations

import sys
import traceback

import typer
from rich.markup import escape

from byob.cli import connections as _connections  # noqa: F401 - registers commands
from byob.cli import credentials as _credentials  # noqa: F401
from byob.cli import demo as _demo  # noqa: F401
from byob.cli import output
from byob.cli import server as _server  # noqa: F401
from byob.cli import transfers as _transfers  # noqa: F401
from byob.cli import webhooks as _webhooks  # noqa: F401
from byob.cli.root import cli, close_services, state
from byob.errors import ByobError


def run() -> None:
    """Entry point: every error is one clear line and exit status 1."""
    try:
        # Without standalone mode, click returns the code of `raise typer.Exit(n)`.
        code = cli(standalone_mode=False)
    except ByobError as exc:
        if state["verbose"]:
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
        if state["verbose"]:
            traceback.print_exc()
        output.errors.print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(run with -v for details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    finally:
        close_services()
    sys.exit(code if isinstance(code, int) else 0)
