"""The `byob` command line: every error is reported here, in one place."""

from __future__ import annotations

import sys
import traceback

import typer
from rich.markup import escape

from byob.cli import connections as _connections  # noqa: F401 - registers commands
from byob.cli import credentials as _credentials  # noqa: F401
from byob.cli import deletes as _deletes  # noqa: F401
from byob.cli import demo as _demo  # noqa: F401
from byob.cli import imports as _imports  # noqa: F401
from byob.cli import manifests as _manifests  # noqa: F401
from byob.cli import output
from byob.cli import server as _server  # noqa: F401
from byob.cli import transfers as _transfers  # noqa: F401
from byob.cli import webhooks as _webhooks  # noqa: F401
from byob.cli.root import cli, close_services, state
from byob.errors import ByobError


def run() -> None:
    """Entry point: every error is one clear line (under --json, a JSON error body) and exit
    status 1."""
    try:
        # Without standalone mode, click returns the code of `raise typer.Exit(n)`.
        code = cli(standalone_mode=False)
    except ByobError as exc:
        if state["verbose"]:
            traceback.print_exc()
        _report(exc.code, exc.message, exc.field)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        output.errors.print("aborted")
        sys.exit(130)
    except Exception as exc:  # the one place unexpected errors are reported
        # Usage errors come from the click that typer bundles; match them by shape.
        if hasattr(exc, "exit_code") and hasattr(exc, "show"):
            if state["json"] and hasattr(exc, "format_message"):
                _report(USAGE_ERROR, exc.format_message())
            else:
                exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            sys.exit(exc.exit_code)
        if state["verbose"]:
            traceback.print_exc()
        _report(
            UNEXPECTED_ERROR,
            f"{type(exc).__name__}: {exc} (run with -v for details)",
            label="unexpected error",
        )
        sys.exit(1)
    finally:
        close_services()
    sys.exit(code if isinstance(code, int) else 0)


# Codes of the errors that are not byob's own (those carry theirs: byob.errors); the API
# names an unexpected error the same way.
USAGE_ERROR = "usage_error"
UNEXPECTED_ERROR = "internal_error"


def _report(code: str, message: str, field: str | None = None, *, label: str = "error") -> None:
    """An error as the command was asked to answer: under --json the API's error body on
    stdout (where a script reads), else one line on stderr."""
    if state["json"]:
        output.emit_json({"error": {"code": code, "message": message, "field": field}})
        return
    where = escape(f" [{field}]") if field else ""
    output.errors.print(
        f"[bold red]{label}{where}:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
