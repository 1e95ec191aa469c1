"""`byob models capture-deletes` and `byob models prune-deletes`: hard deletes captured in the
source by byob's trigger, delivered as tombstones."""

from __future__ import annotations

from typing import Annotated

import typer

from byob.cli import output
from byob.cli.root import JsonOpt, build_services, models_cli


@models_cli.command("capture-deletes")
def capture_deletes(
    model: Annotated[str, typer.Argument(help="The model whose table's deletes to capture.")],
    apply: Annotated[
        bool,
        typer.Option(
            "--apply", help="Run the SQL in the [source] database instead of printing it."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the SQL that captures a model's hard deletes (byob's byob_deleted_rows table and
    an AFTER DELETE trigger on its table); with --apply, run it. Then set capture_deletes =
    true on the model: transfers deliver each deleted key as a tombstone."""
    services = build_services()
    if not apply:
        statements = services.deletes.capture_sql(model)
        if as_json:
            output.emit_json({"model": model, "sql": statements})
            return
        text = "".join(f"{s};\n" for s in statements)
        output.console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
        return
    spec = services.deletes.install_capture(model)
    if as_json:
        output.emit_json({"model": spec.name, "table": spec.table, "installed": True})
        return
    output.console.print(f"deletes of {spec.table} are captured for model {spec.name}")
    if not spec.capture_deletes:
        output.console.print(
            f"[yellow]note:[/] set capture_deletes = true on model {spec.name} in the models "
            "file so transfers deliver them"
        )


@models_cli.command("prune-deletes")
def prune_deletes(as_json: JsonOpt = False) -> None:
    """Delete the captured deletes that every connection of their tenant has delivered (run it
    after transfers, e.g. daily)."""
    pruned = build_services().deletes.prune()
    if as_json:
        output.emit_json({"pruned": pruned})
        return
    for model, rows in pruned.items():
        output.console.print(f"model {model}: {rows:,} delivered deletes pruned")
    if not pruned:
        output.console.print("no model has capture_deletes = true")
