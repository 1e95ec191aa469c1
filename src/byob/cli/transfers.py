"""`byob transfers …`."""

from __future__ import annotations

from typing import Annotated

import typer

from byob.cli import output
from byob.cli.main import JsonOpt, build_app, transfers_app


@transfers_app.command("run")
def run(
    connection: Annotated[str | None, typer.Argument(help="The connection (or --all).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Re-deliver every row.")
    ] = False,
    run_all: Annotated[
        bool, typer.Option("--all", help="Every active, healthy connection.")
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
    if run_all == (connection is not None):
        raise typer.BadParameter("give a connection name or --all, not both or neither")
    byob = build_app()
    if run_all:
        _run_all(byob, model=model, full_refresh=full_refresh, as_json=as_json, parallel=parallel)
        return
    assert connection is not None
    with output.rows_progress(not as_json) as progress:
        tasks: dict[str, int] = {}

        def for_model(name: str):  # type: ignore[no-untyped-def]
            if progress is None:
                return None
            tasks[name] = progress.add_task(name, total=None)
            return lambda rows: progress.update(tasks[name], completed=rows)

        results = byob.run_transfers(
            connection, model=model, full_refresh=full_refresh, progress=for_model
        )
    records = [r.record.as_dict() | {"resumed": r.resumed} for r in results]
    if as_json:
        output.emit_json({"connection": connection, "transfers": records})
        return
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
            for r in records
        ],
    )
    for result in results:
        for warning in result.warnings:
            output.console.print(f"[yellow]warning:[/] {warning}")


def _run_all(byob, *, model: str | None, full_refresh: bool, as_json: bool, parallel: int) -> None:  # type: ignore[no-untyped-def]
    """Every active, healthy connection, a few at a time: one connection's source scan
    overlaps another's encoding and bookkeeping."""
    from concurrent.futures import ThreadPoolExecutor

    conns = [
        c for c in byob.connections.list() if c.status.value == "active" and not c.failing_check
    ]
    byob.concurrent_transfers = parallel
    records: list[dict] = []  # type: ignore[type-arg]
    with output.rows_progress(not as_json) as progress:
        overall = progress.add_task("connections", total=len(conns)) if progress else None

        def one(conn):  # type: ignore[no-untyped-def]
            results = byob.run_transfers(conn.id, model=model, full_refresh=full_refresh)
            if progress is not None and overall is not None:
                progress.advance(overall)
            return [
                r.record.as_dict() | {"connection": conn.name, "resumed": r.resumed}
                for r in results
            ]

        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="byob-run") as pool:
            for done in pool.map(one, conns):
                records += done
    if as_json:
        output.emit_json({"connections": [c.name for c in conns], "transfers": records})
        return
    output.console.print(
        f"{len(conns)} connections: {sum(r['rows'] for r in records):,} rows in "
        f"{sum(r['files'] for r in records)} files ({output.human_bytes(sum(r['bytes'] for r in records))})"
    )


@transfers_app.command("list")
def list_(connection: str, as_json: JsonOpt = False) -> None:
    """Transfer history of a connection, newest first."""
    byob = build_app()
    conn = byob.connections.get(connection)
    records = [t.as_dict() for t in byob.transfers.list(conn.id)]
    if as_json:
        output.emit_json({"connection": conn.name, "transfers": records})
        return
    output.table(
        f"Transfers of {conn.name}",
        ["id", "model", "type", "status", "rows", "files", "started", "error"],
        [
            [
                r["id"][:12],
                r["model"],
                r["type"],
                r["status"],
                f"{r['rows']:,}",
                r["files"],
                r["started_at"],
                r["error"] or "",
            ]
            for r in records
        ],
    )


@transfers_app.command("show")
def show(transfer_id: str, as_json: JsonOpt = False) -> None:
    """One transfer, with its files."""
    byob = build_app()
    record = byob.transfers.get(transfer_id)
    data = record.as_dict() | {"files": [f.__dict__ for f in byob.transfers.files(record.id)]}
    if as_json:
        output.emit_json(data)
        return
    for key, value in data.items():
        output.console.print(f"[bold]{key}[/]: {value}")


@transfers_app.command("cancel")
def cancel(transfer_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a transfer: a queued one at once; a running one stops and removes its files.
    Its window (and any later one of the model) is delivered again by the next transfer."""
    byob = build_app()
    record = byob.transfers.request_cancel(transfer_id, now=byob.clock())
    byob.audit(
        actor="cli",
        action="transfer.cancel",
        connection_id=record.connection_id,
        changes={"transfer": record.id},
    )
    if as_json:
        output.emit_json(record.as_dict())
    else:
        state = "cancelled" if record.status == "cancelled" else "will stop at its next batch"
        output.console.print(f"Transfer {record.id} {state}")
