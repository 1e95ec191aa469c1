"""`byob api-keys …`, `byob links …` and `byob serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from byob.cli import output
from byob.cli.main import JsonOpt, app, build_app

keys_app = typer.Typer(help="Operator API keys.", no_args_is_help=True)
links_app = typer.Typer(help="One-time connection links for recipients.", no_args_is_help=True)
app.add_typer(keys_app, name="api-keys")
app.add_typer(links_app, name="links")


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")], as_json: JsonOpt = False
) -> None:
    """Create an operator API key; it is printed once and stored only as a hash."""
    from byob.access import Access

    key, token = Access(build_app()).create_api_key(name)
    if as_json:
        output.emit_json({"id": key.id, "name": key.name, "token": token})
    else:
        output.console.print(f"API key [bold]{key.name}[/] (shown once, store it now):")
        output.console.print(token, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_keys(as_json: JsonOpt = False) -> None:
    """List API keys (never their tokens)."""
    from byob.access import Access

    keys = Access(build_app()).keys.list()
    rows = [
        {"id": k.id, "name": k.name, "created_at": k.created_at, "revoked_at": k.revoked_at}
        for k in keys
    ]
    if as_json:
        output.emit_json({"api_keys": rows})
    else:
        output.table(
            "API keys",
            ["name", "created", "revoked"],
            [[r["name"], r["created_at"], r["revoked_at"] or ""] for r in rows],
        )


@keys_app.command("revoke")
def revoke_key(name: str, as_json: JsonOpt = False) -> None:
    """Revoke an API key at once."""
    from byob.access import Access

    byob = build_app()
    Access(byob).keys.revoke(name, now=byob.clock())
    if as_json:
        output.emit_json({"revoked": name})
    else:
        output.console.print(f"API key [bold]{name}[/] revoked")


@links_app.command("create")
def create_link(
    tenant: Annotated[str, typer.Option(help="The tenant the link onboards.")],
    expires: Annotated[str, typer.Option(help="Lifetime: 7d, 12h, 30m.")] = "7d",
    as_json: JsonOpt = False,
) -> None:
    """Create a one-time connection link for a tenant's recipient."""
    from byob.access import Access
    from byob.domain.access import parse_lifetime
    from byob.views import link_view

    byob = build_app()
    access = Access(byob)
    link, token = access.create_link(tenant, lifetime=parse_lifetime(expires), created_by="cli")
    view = link_view(link, byob.clock()) | {"token": token, "url": access.link_url(token)}
    if as_json:
        output.emit_json(view)
    else:
        output.console.print(
            f"Link for tenant [bold]{tenant}[/], expires {link.expires_at:%Y-%m-%d %H:%M} UTC (shown once):"
        )
        output.console.print(view["url"], highlight=False, soft_wrap=True)


@links_app.command("list")
def list_links(
    tenant: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False
) -> None:
    """List links and their states."""
    from byob.access import Access
    from byob.views import link_view

    byob = build_app()
    now = byob.clock()
    views = [link_view(link, now) for link in Access(byob).links.list(tenant=tenant, limit=500)]
    if as_json:
        output.emit_json({"links": views})
    else:
        output.table(
            "Links",
            ["id", "tenant", "state", "expires", "connection"],
            [
                [v["id"], v["tenant"], v["state"], v["expires_at"], v["connection_id"] or ""]
                for v in views
            ],
        )


@links_app.command("revoke")
def revoke_link(link_id: str, as_json: JsonOpt = False) -> None:
    """Revoke a link at once."""
    from byob.access import Access
    from byob.views import link_view

    byob = build_app()
    link = Access(byob).revoke_link(link_id, actor="cli")
    if as_json:
        output.emit_json(link_view(link, byob.clock()))
    else:
        output.console.print(f"Link {link.id} revoked")


@app.command("serve")
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
    from byob.runtime import build_runtime
    from byob.web.app import create_app

    byob = build_app()
    configure(json_lines=byob.settings.log_json)
    runtime = build_runtime(byob, threads=workers)
    api = create_app(byob, workers=runtime.dispatcher, queue_probe=runtime.queue_probe)
    if schedule:
        runtime.scheduler.start(interval=tick)
    try:
        uvicorn.run(api, host=host, port=port, log_config=None, access_log=True)
    finally:
        runtime.stop()


@app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="Transfers this process runs at once.")] = 2,
    name: Annotated[str | None, typer.Option(help="Worker name in the queue.")] = None,
) -> None:
    """Take transfers from the PostgreSQL queue until SIGTERM (which drains running ones)."""
    from byob.errors import ConfigError
    from byob.logs import configure
    from byob.runtime import attach_notifier, is_production
    from byob.workers import queue as q

    byob = build_app()
    configure(json_lines=byob.settings.log_json)
    if not is_production(byob):
        raise ConfigError(
            "byob worker needs a PostgreSQL state store (BYOB_DATABASE_URL=postgresql://…); "
            "the embedded default runs its workers inside `byob serve`",
            field="BYOB_DATABASE_URL",
        )
    notifier = attach_notifier(byob)
    jobs = q.make_queue(byob.settings.state_url)
    q.ensure_schema(jobs)
    try:
        q.run_worker(byob, jobs, concurrency=concurrency, name=name)
    finally:
        if notifier is not None:
            notifier.close()


@app.command("migrate")
def migrate(as_json: JsonOpt = False) -> None:
    """Bring the state store (and, on PostgreSQL, the queue) up to date."""
    from byob.runtime import is_production

    byob = build_app()
    if is_production(byob):
        from byob.workers import queue as q

        q.ensure_schema(q.make_queue(byob.settings.state_url))
    if as_json:
        output.emit_json({"migrated": True})
    else:
        output.console.print("state store is up to date")
