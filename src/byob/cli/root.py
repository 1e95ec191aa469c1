"""The `byob` command's groups, its shared options, and the use cases each command builds
(from BYOB_* settings and --config, once per process, closed when the command ends)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from byob.services import Services

cli = typer.Typer(
    name="byob",
    help="Deliver each tenant's rows into storage the tenant owns.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
connections_cli = typer.Typer(
    help="Connections to tenants' storage (exports and imports): create, validate, activate.",
    no_args_is_help=True,
)
transfers_cli = typer.Typer(help="Run and inspect transfers.", no_args_is_help=True)
models_cli = typer.Typer(help="The models file.", no_args_is_help=True)
keys_cli = typer.Typer(help="Operator API keys.", no_args_is_help=True)
links_cli = typer.Typer(help="One-time connection links for recipients.", no_args_is_help=True)
secrets_cli = typer.Typer(help="The key sealing secrets at rest.", no_args_is_help=True)
signing_keys_cli = typer.Typer(
    help="The keys signing manifests: show, rotate.", no_args_is_help=True
)
manifests_cli = typer.Typer(help="Delivered manifests: verify.", no_args_is_help=True)
webhooks_cli = typer.Typer(help="Webhook events: delivered, waiting, failed.", no_args_is_help=True)
imports_cli = typer.Typer(
    help="Import connections' files: the rejected ones, retrying one.", no_args_is_help=True
)
cli.add_typer(connections_cli, name="connections")
cli.add_typer(transfers_cli, name="transfers")
cli.add_typer(models_cli, name="models")
cli.add_typer(keys_cli, name="api-keys")
cli.add_typer(links_cli, name="links")
cli.add_typer(secrets_cli, name="secrets")
cli.add_typer(webhooks_cli, name="webhooks")
cli.add_typer(signing_keys_cli, name="keys")
cli.add_typer(manifests_cli, name="manifests")
cli.add_typer(imports_cli, name="imports")
state: dict[str, Any] = {"verbose": False, "config": None, "opened": [], "json": False}


def _remember_json(as_json: bool) -> bool:
    # Errors are reported after the command has gone (cli/main.py): they learn from here
    # whether it was asked for JSON.
    state["json"] = as_json
    return as_json


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output.", callback=_remember_json)
]
CONNECTION_HELP = (
    "The connection: its name, tenant/name when tenants share the name, or its ID (or the "
    "start of it)."
)
ConnectionArg = Annotated[str, typer.Argument(help=CONNECTION_HELP, show_default=False)]
ACTOR = "cli"  # how the audit log names what the command line did


@cli.callback()
def main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Models file (TOML); or BYOB_CONFIG.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
) -> None:
    state["config"] = config
    state["verbose"] = verbose


def build_services() -> Services:
    """The use cases over adapters built from BYOB_* settings and --config; schema migrated.
    Closed (webhooks delivered, connections closed) when the command ends."""
    from byob.container import Byob
    from byob.services import Services
    from byob.settings import load_settings

    byob = Byob(load_settings(config=state["config"]))
    state["opened"].append(byob)
    byob.migrate()
    services = Services(byob)
    started()
    return services


# Start-up (imports and wiring, most of a small command's time) makes a few hundred thousand
# objects that live as long as the process: modules, classes, functions, tables. The cyclic
# garbage collector, at its default pace, walks them again and again as they pile up: ~70 ms
# of CPU in a small `transfers run`. So it runs rarely until the command has built its
# services, and then never again over what start-up made (gc.freeze). Rarely, not never: a
# command that builds no services still collects.
STARTUP_GC_THRESHOLD = 200_000  # allocations between collections; Python's default is 700


def collect_rarely_while_starting() -> None:
    """Called first by the `byob` entry point (cli/main.py); undone by ``started``."""
    threshold = gc.get_threshold()
    state["gc_threshold"] = threshold
    gc.set_threshold(STARTUP_GC_THRESHOLD, *threshold[1:])


def started() -> None:
    """Start-up is over: what it made is set aside for good, and collection resumes its pace."""
    threshold = state.pop("gc_threshold", None)
    if threshold is None:
        return  # not started by the entry point (a test driving commands): nothing to undo
    gc.freeze()
    gc.set_threshold(*threshold)


def close_services() -> None:
    opened: list[Any] = state["opened"]
    while opened:
        opened.pop().close()
