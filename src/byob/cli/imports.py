"""`byob imports …`: an import connection's rejected files, and retrying one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from byob.cli import output
from byob.cli.root import ACTOR, ConnectionArg, JsonOpt, build_services, imports_cli
from byob.cli.transfers import print_results


@imports_cli.command("rejected")
def rejected(
    connection: ConnectionArg,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The files an import connection rejected, newest first, each with its first problem;
    later runs skip them until they are retried or replaced (a new ETag is a new file)."""
    from byob.services.imports import rejections_view

    services = build_services()
    conn = services.connections.get(connection)
    found = services.imports.rejected(conn, limit=limit)
    if as_json:
        output.emit_json({"connection": conn.name} | rejections_view(found))  # as the API's
        return
    if not found.items:
        output.console.print(f"Connection [bold]{conn.name}[/] has no rejected files")
        return
    if found.total > len(found.items):
        output.console.print(
            f"the {len(found.items)} newest of {found.total:,} rejected files (--limit for more)"
        )
    output.table(
        f"Rejected files of {conn.name}",
        ["key", "size", "rejected at", "first problem"],
        [
            [
                escape(r.key),  # keys and values are the tenant's: never markup
                output.human_bytes(r.size),
                output.when(r.rejected_at),
                escape(r.first_problem()),
            ]
            for r in found.items
        ],
    )
    output.console.print(
        f"Fix or replace a file, or `byob imports retry {conn.name} KEY` to try it again",
        highlight=False,
    )


@imports_cli.command("retry")
def retry(
    connection: ConnectionArg,
    key: Annotated[
        str, typer.Argument(help="The rejected file's key, as `imports rejected` lists it.")
    ],
    run: Annotated[
        bool, typer.Option("--run", help="Run the import now instead of at its next run.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Forget that a file was rejected, so the import tries it again: at its next run, or now
    with --run."""
    from byob.services.transfers import describe

    services = build_services()
    conn = services.connections.get(connection)
    cleared = services.imports.retry(conn, key, actor=ACTOR)
    results = services.transfers.run(conn.id, actor=ACTOR) if run else []
    if as_json:
        answer = {"connection": conn.name, "key": key, "cleared": cleared}
        output.emit_json(answer | ({"transfers": describe(results)} if run else {}))
        return
    if not run:
        output.console.print(
            f"{escape(key)} will be tried again by the next run of [bold]{conn.name}[/] "
            f"(or now: `byob transfers run {conn.name}`)",
            highlight=False,
        )
        return
    output.console.print(f"Trying {key} again", highlight=False, markup=False)
    print_results(conn.name, results)
