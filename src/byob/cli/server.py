"""`byob serve`, `byob worker` and `byob migrate`: running byob as a service."""

from __future__ import annotations

from typing import Annotated

import typer

from byob.cli import output
from byob.cli.root import JsonOpt, build_services, cli


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[int, typer.Option(help="Transfer threads (embedded default only).")] = 2,
    schedule: Annotated[
        bool, typer.Option("--schedule/--no-schedule", help="Run the scheduler.")
    ] = True,
    tick: Annotated[float, typer.Option(help="Seconds between scheduler ticks.")] = 5.0,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the scheduler; on the embedded default also
    the transfer workers (with PostgreSQL state, run `byob worker` processes)."""
    import uvicorn

    from byob.logs import configure
    from byob.web.app import create_app
    from byob.workers.runtime import build_runtime

    _check_free(host, port)
    services = build_services()
    configure(json_lines=services.adapters.settings.log_json)
    runtime = build_runtime(services, threads=workers)
    services.health.identity_problem()  # a missing AWS identity is logged now, once
    api = create_app(services)
    if schedule:
        runtime.scheduler.start(interval=tick)
    try:
        uvicorn.run(api, host=host, port=port, log_config=None, access_log=True)
    finally:
        runtime.stop()


def _check_free(host: str, port: int) -> None:
    """Say plainly, before anything starts, that the address cannot be listened on: uvicorn
    would find out only after byob started, and say it in a log line."""
    import errno
    import socket

    from byob.errors import ConfigError, ConflictError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port left in TIME_WAIT may be bound again, one listened on not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(
                    f"port {port} on {host} is in use (another byob serve?); choose another "
                    "with --port"
                ) from exc
            raise ConfigError(
                f"cannot listen on port {port} on {host}: {exc.strerror or exc}"
            ) from exc


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
    services.adapters.events.start()  # delivers webhooks; a misconfigured one fails now
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
