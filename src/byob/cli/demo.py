"""`byob demo`: the whole product end to end on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from byob.cli.root import cli


@cli.command("demo")
def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's files here (default: a temporary directory)."),
    ] = None,
    scale: Annotated[float, typer.Option(help="Dataset size multiplier (1.0 ≈ 100k+ rows).")] = 1.0,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the figures as JSON (the walk-through goes to stderr)."),
    ] = False,
) -> None:
    """Generate a billing dataset, onboard a customer in an in-process AWS emulator, and
    deliver two transfers (backfill, then incremental) into their bucket."""
    from byob.cli.output import emit_json
    from byob.demo import runner

    if as_json:
        runner.console.stderr = True
    figures = runner.run_demo(workdir=workdir, scale=scale)
    if as_json:
        emit_json(figures)
