"""`byob demo`: the whole product end to end on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from byob.cli.main import app


@app.command("demo")
def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's files here (default: a temporary directory)."),
    ] = None,
    scale: Annotated[float, typer.Option(help="Dataset size multiplier (1.0 ≈ 100k+ rows).")] = 1.0,
) -> None:
    """Generate a billing dataset, onboard a customer in an in-process AWS emulator, and
    deliver two transfers (backfill, then incremental) into their bucket."""
    from byob.demo.runner import run_demo

    run_demo(workdir=workdir, scale=scale)
