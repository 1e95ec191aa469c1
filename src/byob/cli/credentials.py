"""`byob api-keys …`, `byob links …` and `byob secrets rotate`: what lets people and byob in."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from byob.cli import output
from byob.cli.root import ACTOR, JsonOpt, build_services, keys_cli, links_cli, secrets_cli


@keys_cli.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")], as_json: JsonOpt = False
) -> None:
    """Create an operator API key; it is printed once and stored only as a hash."""
    key, token = build_services().api_keys.create(name)
    if as_json:
        output.emit_json({"id": key.id, "name": key.name, "token": token})
    else:
        output.console.print(f"API key [bold]{key.name}[/] (shown once, store it now):")
        output.console.print(token, highlight=False, soft_wrap=True)


@keys_cli.command("list")
def list_keys(as_json: JsonOpt = False) -> None:
    """List API keys (never their tokens)."""
    keys = build_services().api_keys.all()
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


@keys_cli.command("revoke")
def revoke_key(name: str, as_json: JsonOpt = False) -> None:
    """Revoke an API key at once."""
    build_services().api_keys.revoke(name)
    if as_json:
        output.emit_json({"revoked": name})
    else:
        output.console.print(f"API key [bold]{name}[/] revoked")


@links_cli.command("create")
def create_link(
    tenant: Annotated[str, typer.Option(help="The tenant the link onboards.")],
    expires: Annotated[str, typer.Option(help="Lifetime: 7d, 12h, 30m.")] = "7d",
    connection: Annotated[
        str | None,
        typer.Option(help="A draft to continue, or with --read-only the connection to show."),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help="A link that shows the connection's deliveries, changing nothing."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a one-time connection link for a tenant's recipient (or, with --read-only, a
    link to the delivery page of one of its connections)."""
    from byob.domain.credentials import parse_lifetime
    from byob.services.views import link_view

    services = build_services()
    link, token = services.links.create_for(
        tenant,
        lifetime=parse_lifetime(expires),
        actor=ACTOR,
        connection=connection,
        read_only=read_only,
    )
    view = link_view(link, services.now()) | {"token": token, "url": services.links.url(token)}
    if as_json:
        output.emit_json(view)
    else:
        what = "Read-only delivery link" if link.read_only else "Link"
        output.console.print(
            f"{what} for tenant [bold]{link.tenant}[/], expires "
            f"{link.expires_at:%Y-%m-%d %H:%M} UTC (shown once):"
        )
        output.console.print(view["url"], highlight=False, soft_wrap=True)
    warning = services.links.url_warning()
    if warning is not None:  # on stderr: under --json, stdout is the link alone
        output.errors.print(
            f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True
        )


@links_cli.command("list")
def list_links(
    tenant: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False
) -> None:
    """List links and their states."""
    from byob.services.views import link_view

    services = build_services()
    now = services.now()
    views = [link_view(link, now) for link in services.links.every(tenant=tenant)]
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


@links_cli.command("revoke")
def revoke_link(
    link_id: Annotated[
        str,
        typer.Argument(
            help="The link's ID, or the start of it (4 characters or more).", show_default=False
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a link at once."""
    from byob.services.views import link_view

    services = build_services()
    link = services.links.revoke(link_id, actor=ACTOR)
    if as_json:
        output.emit_json(link_view(link, services.now()))
    else:
        output.console.print(f"Link {link.id} revoked")


@secrets_cli.command("rotate")
def rotate_secrets(as_json: JsonOpt = False) -> None:
    """Re-seal every stored secret under BYOB_SECRET_KEY. Run it with the new key in
    BYOB_SECRET_KEY and the old one in BYOB_SECRET_KEYS_OLD (on every machine while it runs);
    afterwards the old key can go."""
    services = build_services()
    resealed = services.secrets.rotate(actor=ACTOR)
    key = services.adapters.secrets.key_id
    if as_json:
        output.emit_json({"resealed": resealed, "key": key})
    else:
        output.console.print(f"{resealed} secrets re-sealed under key {key}")
