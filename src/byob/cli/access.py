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
def create_key(name: Annotated[str, typer.Option(help="Who or what uses the key.")], as_json: JsonOpt = False) -> None:
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
    rows = [{"id": k.id, "name": k.name, "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys]
    if as_json:
        output.emit_json({"api_keys": rows})
    else:
        output.table("API keys", ["name", "created", "revoked"],
                     [[r["name"], r["created_at"], r["revoked_at"] or ""] for r in rows])  # fmt: skip


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
        output.console.print(f"Link for tenant [bold]{tenant}[/], expires {link.expires_at:%Y-%m-%d %H:%M} UTC (shown once):")
        output.console.print(view["url"], highlight=False, soft_wrap=True)


@links_app.command("list")
def list_links(tenant: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False) -> None:
    """List links and their states."""
    from byob.access import Access
    from byob.views import link_view

    byob = build_app()
    now = byob.clock()
    views = [link_view(link, now) for link in Access(byob).links.list(tenant=tenant, limit=500)]
    if as_json:
        output.emit_json({"links": views})
    else:
        output.table("Links", ["id", "tenant", "state", "expires", "connection"],
                     [[v["id"], v["tenant"], v["state"], v["expires_at"], v["connection_id"] or ""]
                      for v in views])  # fmt: skip


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
    workers: Annotated[int, typer.Option(help="Transfer threads (embedded default).")] = 2,
) -> None:
    """Serve the REST API (OpenAPI at /docs) with local transfer workers."""
    import uvicorn

    from byob.web.app import create_app
    from byob.workers.local import LocalWorkers

    byob = build_app()
    api = create_app(byob, workers=LocalWorkers(byob, threads=workers))
    uvicorn.run(api, host=host, port=port, log_level="info", access_log=True)
