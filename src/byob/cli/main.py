"""The `byob` command line: every error is reported here, in one place."""

from __future__ import annotations

import sys
from importlib import import_module

import typer

from byob.cli import output
from byob.cli.root import cli, close_services, collect_rarely_while_starting, state
from byob.errors import ByobError

# The modules registering each command (or group of commands): a command imports only its
# own (`transfers run` need not load what `connections create` does); help, or a command
# line not understood here, imports them all.
_COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "connections": ("connections",),
    "models": ("connections", "deletes"),
    "api-keys": ("credentials",),
    "links": ("credentials",),
    "secrets": ("credentials",),
    "imports": ("imports",),
    "manifests": ("manifests",),
    "keys": ("manifests",),
    "transfers": ("transfers",),
    "webhooks": ("webhooks",),
    "demo": ("demo",),
    "migrate": ("server",),
    "migrate-imports": ("server",),
    "serve": ("server",),
    "worker": ("server",),
}
_ALL_MODULES = sorted({m for modules in _COMMAND_MODULES.values() for m in modules})


def _register_commands(argv: list[str]) -> None:
    for name in _COMMAND_MODULES.get(_command_name(argv) or "", _ALL_MODULES):
        import_module(f"byob.cli.{name}")


def _command_name(argv: list[str]) -> str | None:
    """The command (or group) a command line runs, past the root options (root.main); None
    when there is none or an argument is not understood here."""
    args = iter(argv)
    for arg in args:
        if arg in ("--config", "-c"):
            next(args, None)
        elif arg.startswith(("--config=", "-c")) or arg in ("--verbose", "-v"):
            continue
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def run() -> None:
    """Entry point: every error is one clear line (under --json, a JSON error body) and exit
    status 1."""
    collect_rarely_while_starting()
    _register_commands(sys.argv[1:])
    try:
        # Without standalone mode, click returns the code of `raise typer.Exit(n)`.
        code = cli(standalone_mode=False)
    except ByobError as exc:
        if state["verbose"]:
            _print_traceback()
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
            _print_traceback()
        _report(
            UNEXPECTED_ERROR,
            f"{type(exc).__name__}: {_first_line(exc)} (run with -v for details)",
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


def _print_traceback() -> None:
    import traceback  # only on errors under --verbose: not loaded at every start-up

    traceback.print_exc()


def _report(code: str, message: str, field: str | None = None, *, label: str = "error") -> None:
    """An error as the command was asked to answer: under --json the API's error body on
    stdout (where a script reads), else one line on stderr."""
    if state["json"]:
        output.emit_json({"error": {"code": code, "message": message, "field": field}})
        return
    from rich.markup import escape  # Rich only for a person reading the error

    where = escape(f" [{field}]") if field else ""
    output.errors.print(
        f"[bold red]{label}{where}:[/] {escape(message)}", highlight=False, soft_wrap=True
    )


def _first_line(exc: BaseException) -> str:
    """What an unexpected error says, in one line: its first, redacted and cut short. A
    database driver's message goes on with the SQL and its parameters (-v shows them)."""
    from byob.logs import redact

    lines = str(exc).strip().splitlines()
    first = redact(lines[0]) if lines else ""
    return first if len(first) <= 200 else first[:199] + "…"
