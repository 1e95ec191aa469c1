"""`byob serve`, `byob worker` and `byob migrate`: running byob as a service."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated

import typer

from byob.cli import output
from byob.cli.root import JsonOpt, build_services, cli, close_services

if TYPE_CHECKING:
    from byob.services import Services


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[int, typer.Option(help="Transfer threads (embedded default only).")] = 2,
    schedule: Annotated[
        bool, typer.Option("--schedule/--no-schedule", help="Run the scheduler.")
    ] = True,
    tick: Annotated[float, typer.Option(help="Seconds between scheduler ticks.")] = 5.0,
    web_processes: Annotated[
        int | None,
        typer.Option(
            envvar="BYOB_WEB_PROCESSES",
            help="Processes answering web and API requests on the one port (PostgreSQL state "
            "only; default: one per CPU, at most 8). The scheduler runs in the first.",
            min=1,
        ),
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the scheduler; on the embedded default also
    the transfer workers (with PostgreSQL state, run `byob worker` processes)."""
    from byob.cli import web_processes as wp

    sock = wp.listen(host, port)
    services = build_services()
    count = wp.how_many(web_processes, production=services.adapters.settings.is_production)
    children: list[int] = []
    if count > 1:
        # Forked before anything opens a connection or starts a thread: each its own.
        close_services()
        children = [
            wp.fork(lambda: _answer(sock, workers, schedule=False)) for _ in range(count - 1)
        ]
        services = build_services()
    _answer(sock, workers, schedule=schedule, tick=tick, services=services, children=children)


def _answer(
    sock: socket.socket,
    workers: int,
    *,
    schedule: bool,
    tick: float = 5.0,
    services: Services | None = None,
    children: list[int] | None = None,
) -> None:
    """Answer requests on ``sock`` until told to stop (SIGTERM/SIGINT) or, in the first
    process, until another one ends: byob serve then stops them all and exits 1, so that its
    supervisor starts it again."""
    from byob.cli import web_processes as wp
    from byob.logs import configure
    from byob.web.app import create_app
    from byob.workers.runtime import build_runtime

    services = services or build_services()
    configure(json_lines=services.adapters.settings.log_json)
    runtime = build_runtime(services, threads=workers)
    if children is not None:  # the first process
        services.health.identity_problem()  # a missing AWS identity is logged now, once
    server = wp.server(create_app(services))
    watch = wp.Watch(children or [], server)
    if schedule:
        runtime.scheduler.start(interval=tick)
    try:
        wp.run(server, sock)
    finally:
        watch.stop_all()
        runtime.stop()
    if watch.failed:
        raise typer.Exit(1)


@cli.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="Transfers this process runs at once.")] = 2,
    name: Annotated[str | None, typer.Option(help="Worker name in the queue.")] = None,
) -> None:
    """Take transfers from the PostgreSQL queue until SIGTERM (which drains running ones)."""
    from byob.errors import ConfigError
    from byob.logs import configure
    from byob.workers import queue as q

    services = build_services()
    settings = services.adapters.settings
    configure(json_lines=settings.log_json)
    if not settings.is_production:
        raise ConfigError(
            "byob worker needs a PostgreSQL state store (BYOB_DATABASE_URL=postgresql://…); "
            "the embedded default runs its workers inside `byob serve`",
            field="BYOB_DATABASE_URL",
        )
    # Delivers webhooks. A URL without BYOB_WEBHOOK_SECRET fails here (a malformed URL failed
    # with the settings); an endpoint down or answering wrong fails each delivery instead
    # (logged, and in `byob webhooks list`).
    services.adapters.events.start()
    jobs = q.make_queue(settings.state_url, max_attempts=settings.transfer_max_attempts)
    q.ensure_schema(jobs, services.adapters.state)
    q.run_worker(services, jobs, concurrency=concurrency, name=name)


@cli.command("migrate")
def migrate(as_json: JsonOpt = False) -> None:
    """Bring the state store (and, on PostgreSQL, the queue) up to date."""

    services = build_services()
    settings = services.adapters.settings
    if settings.is_production:
        from byob.workers import queue as q

        q.ensure_schema(q.make_queue(settings.state_url), services.adapters.state)
    if as_json:
        output.emit_json({"migrated": True})
    else:
        output.console.print("state store is up to date")


@cli.command("migrate-imports")
def migrate_imports(
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL for a DBA to run instead of running it.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the ledger imports record each loaded file in (byob_import_ledger), in the models
    file's [source] PostgreSQL database; with --sql, print its SQL instead."""
    from byob.sources.import_target import LEDGER, LEDGER_DDL

    if sql:
        output.console.print(f"{LEDGER_DDL};", markup=False, highlight=False, soft_wrap=True)
        return
    build_services().models.create_import_ledger()
    if as_json:
        output.emit_json({"ledger": LEDGER, "created": True})
    else:
        output.console.print(f"{LEDGER} is in place")
