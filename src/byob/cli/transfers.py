"""`byob transfers …`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from byob.cli import output
from byob.cli.root import (
    ACTOR,
    CONNECTION_HELP,
    ConnectionArg,
    JsonOpt,
    build_services,
    transfers_cli,
)
from byob.domain.ids import short

if TYPE_CHECKING:
    from byob.domain.transfers import FileRecord, TransferProgress, TransferRecord
    from byob.engine.transfer import Progress, TransferResult

TransferArg = Annotated[
    str,
    typer.Argument(
        help="The transfer's ID, or the start of it (4 characters or more).", show_default=False
    ),
]


@transfers_cli.command("run")
def run(
    connection: Annotated[
        str | None, typer.Argument(help=CONNECTION_HELP + " (Or --all.)", show_default=False)
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Re-deliver every row.")
    ] = False,
    run_all: Annotated[
        bool, typer.Option("--all", help="Every connection that may transfer.")
    ] = False,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=1,
            max=32,
            help="With --all: connections at once (sharing one transfer's buffers).",
        ),
    ] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Run a transfer now: finish an interrupted one, then move the new rows of every model."""
    from byob.services.transfers import describe

    if run_all == (connection is not None):
        raise typer.BadParameter("give a connection name or --all, not both or neither")
    services = build_services()
    if run_all:
        _run_all(
            services, model=model, full_refresh=full_refresh, as_json=as_json, parallel=parallel
        )
        return
    assert connection is not None
    from byob.engine.transfer import WithTotal  # the engine, not loaded for other commands

    # Scripts (--json, or stderr piped) get a JSON line now and then instead of the display.
    lines = None
    if as_json or not sys.stderr.isatty():
        lines = output.ProgressLines(services.adapters.settings.progress_interval_seconds)
    with output.rows_progress(not as_json) as progress:

        def for_model(name: str) -> Progress:
            task = progress.add_task(name, total=None) if progress is not None else None

            def show(p: TransferProgress) -> None:
                if progress is not None and task is not None:
                    figures = output.progress_figures(p)
                    progress.update(task, completed=p.rows, total=p.total, figures=figures)
                if lines is not None:
                    lines(p)

            # A total (a count of the window) only for a person at a terminal: scripts get
            # rows, rate and bytes without the extra read.
            return WithTotal(show) if progress is not None else show

        results = services.transfers.run(
            connection, model=model, full_refresh=full_refresh, actor=ACTOR, progress=for_model
        )
    if as_json:
        output.emit_json({"connection": connection, "transfers": describe(results)})
        return
    print_results(connection, results)


def print_results(connection: str, results: list[TransferResult]) -> None:
    """The transfers a run made, as a table, then their warnings and notes."""
    from byob.services.transfers import describe

    records = describe(results)
    exported = [r for r in records if r["import_counts"] is None]
    imported = [r for r in records if r["import_counts"] is not None]
    if exported or not imported:
        output.table(
            f"Transfers of {connection}",
            ["model", "type", "window", "rows", "files", "bytes", "status"],
            [
                [
                    r["model"] + (" (resumed)" if r["resumed"] else ""),
                    r["type"],
                    f"({r['window']['low'] or '-∞'}, {r['window']['high']}]",
                    f"{r['rows']:,}",
                    r["files"],
                    output.human_bytes(r["bytes"]),
                    r["status"],
                ]
                for r in exported
            ],
        )
    if imported:
        output.table(
            f"Imports of {connection}",
            ["import", *IMPORT_COUNTS.values(), "rows", "bytes", "status"],
            [
                [
                    r["model"],
                    *[r["import_counts"].get(k, 0) for k in IMPORT_COUNTS],
                    f"{r['rows']:,}",
                    output.human_bytes(r["bytes"]),
                    r["status"],
                ]
                for r in imported
            ],
        )
    for result in results:
        for warning in result.warnings:
            output.console.print(f"[yellow]warning:[/] {warning}")
        if result.record.note:  # e.g. rows the settle lag keeps for the next transfer
            output.console.print(f"{result.record.model}: {result.record.note}", highlight=False)
        if (result.record.import_counts or {}).get("rejected"):
            output.console.print(
                f"`byob imports rejected {connection}` shows why files were rejected",
                highlight=False,
            )


# An import run's object counts (services/imports.py) and how its tables head them.
IMPORT_COUNTS = {
    "seen": "files seen",
    "imported": "imported",
    "rejected": "rejected",
    "skipped": "skipped",
    "already": "already loaded",
}


def _run_all(
    services: Any, *, model: str | None, full_refresh: bool, as_json: bool, parallel: int
) -> None:
    from byob.services.transfers import describe

    with output.rows_progress(not as_json) as progress:
        total = len(services.transfers.runnable())
        overall = progress.add_task("connections", total=total) if progress else None

        def advance(_conn: Any) -> None:
            if progress is not None and overall is not None:
                progress.advance(overall)

        outcome = services.transfers.run_all(
            model=model,
            full_refresh=full_refresh,
            parallel=parallel,
            actor=ACTOR,
            on_connection_done=advance,
        )
    records = [
        view | {"connection": conn.name}
        for conn, result in outcome.results
        for view in describe([result])
    ]
    failures = [{"connection": conn.name, "error": exc.to_dict()} for conn, exc in outcome.failures]
    if as_json:
        output.emit_json(
            {
                "connections": [c.name for c in outcome.connections],
                "transfers": records,
                "failures": failures,
            }
        )
    else:
        output.console.print(
            f"{len(outcome.connections)} connections: {sum(r['rows'] for r in records):,} rows in "
            f"{sum(r['files'] for r in records)} files "
            f"({output.human_bytes(sum(r['bytes'] for r in records))})"
        )
        for failure in failures:
            output.errors.print(
                f"[bold red]failed[/] {failure['connection']}: {failure['error']['message']}",
                highlight=False,
                soft_wrap=True,
            )
    if failures:
        raise typer.Exit(1)


@transfers_cli.command("list")
def list_(
    connection: ConnectionArg,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Transfer history of a connection, newest first."""
    from byob.services.views import transfer_view

    conn, history = build_services().transfers.history(connection, limit=limit)
    records = [transfer_view(t) for t in history.items]
    if as_json:
        output.emit_json({"connection": conn.name, "transfers": records, "total": history.total})
        return
    if history.total > len(records):
        output.console.print(
            f"the {len(records)} newest of {history.total:,} transfers (--limit for more)"
        )
    output.table(
        f"Transfers of {conn.name}",
        ["id", "model", "type", "status", "rows", "files", "started", "notes"],
        [
            [
                short(r["id"]),
                r["model"],
                r["type"],
                r["status"],
                f"{r['rows']:,}",
                r["files"],
                r["started_at"],
                r["error"] or r["note"] or "",
            ]
            for r in records
        ],
    )


@transfers_cli.command("show")
def show(transfer_id: TransferArg, as_json: JsonOpt = False) -> None:
    """One transfer, with its files."""
    from byob.services.views import transfer_view

    services = build_services()
    record = services.transfers.get(transfer_id)
    files = services.transfers.files(record)
    if as_json:
        views = [f.__dict__ | {"state": f.state.value} for f in files]
        output.emit_json(transfer_view(record) | {"files": views})
        return
    names = services.connections.names([record.connection_id])
    _print_transfer(record, files, connection=names.get(record.connection_id, record.connection_id))


def _print_transfer(t: TransferRecord, files: list[FileRecord], *, connection: str) -> None:
    took = t.finished_at - t.started_at if t.finished_at else None
    rows = f"{t.rows:,}"
    if t.excluded_rows:
        rows += f" ({t.excluded_rows:,} left out: their cursor is NULL)"
    counts = t.import_counts
    fields: list[tuple[str, Any]] = [("ID", t.id), ("connection", connection)]
    if counts is None:
        fields += [
            ("model", t.model),
            ("type", t.type.value.replace("_", " ")),
            ("status", t.status.value),
            ("window", output.window(t.window.low, t.window.high)),
        ]
    else:  # an import run reads the files it finds: no window, and it writes no manifest
        fields += [("import", t.model), ("type", t.type.value), ("status", t.status.value)]
    fields += [
        ("started", t.started_at),
        ("finished", t.finished_at),
        ("took", f"{took.total_seconds():,.1f} s" if took is not None else None),
        ("rows", rows),
    ]
    if counts is None:
        fields += [("files", t.files), ("size", output.human_bytes(t.bytes))]
        fields += [("attempts", t.attempts), ("manifest", t.manifest_key)]
    else:
        fields += [(label, counts.get(key, 0)) for key, label in IMPORT_COUNTS.items()]
        fields += [("size", output.human_bytes(t.bytes)), ("attempts", t.attempts)]
    fields += [("error", t.error), ("note", t.note)]
    output.record(f"Transfer {short(t.id)}", fields)
    if files:
        output.table(
            "Files",
            ["part", "key", "state", "rows", "size"],
            [
                [f.file_part, f.key, f.state.value, f"{f.rows:,}", output.human_bytes(f.bytes)]
                for f in files
            ],
        )


@transfers_cli.command("cancel")
def cancel(transfer_id: TransferArg, as_json: JsonOpt = False) -> None:
    """Cancel a transfer: a queued one at once; a running one stops and removes its files.
    Its window (and any later one of the model) is delivered again by the next transfer."""
    from byob.domain.transfers import cancel_outcome
    from byob.services.views import transfer_view

    record = build_services().transfers.cancel(transfer_id, actor=ACTOR)
    if as_json:
        output.emit_json(transfer_view(record))
    else:
        output.console.print(f"Transfer {record.id} {cancel_outcome(record.status)}.")
