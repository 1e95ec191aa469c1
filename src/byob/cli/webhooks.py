"""`byob webhooks …`: the events the operator's endpoint was sent, is to be sent, or missed."""

from __future__ import annotations

from typing import Annotated

import typer

from byob.cli import output
from byob.cli.root import ACTOR, JsonOpt, build_services, webhooks_cli


@webhooks_cli.command("list")
def list_webhooks(
    failed: Annotated[bool, typer.Option("--failed", help="Only those given up on.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Webhook events, newest first: delivered, waiting for their next attempt, or failed."""
    from byob.services.webhooks import webhook_view

    views = [webhook_view(e) for e in build_services().webhooks.page(failed=failed, limit=limit)]
    if as_json:
        output.emit_json({"webhooks": views})
        return
    output.table(
        "Webhook events",
        ["id", "event", "status", "attempts", "created", "last error"],
        [
            [
                v["id"],
                v["event"],
                v["status"],
                v["attempts"],
                v["created_at"],
                v["last_error"] or "",
            ]
            for v in views
        ],
    )


@webhooks_cli.command("redeliver")
def redeliver_webhook(event_id: str, as_json: JsonOpt = False) -> None:
    """Send a webhook event again (one that failed, or one the receiver lost)."""
    from byob.services.webhooks import webhook_view

    services = build_services()
    event = services.webhooks.redeliver(event_id, actor=ACTOR)
    services.adapters.events.close()  # sends what is due now; a serving process retries later
    if as_json:
        output.emit_json(webhook_view(event))
    else:
        output.console.print(f"Webhook event {event.id} ({event.event}) will be sent again")
