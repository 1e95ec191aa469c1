"""How `byob serve` and `byob worker` run: embedded (SQLite state, threads in one process) or
production (PostgreSQL state, Procrastinate workers on any number of machines)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from byob.app import Byob
from byob.errors import ConfigError
from byob.workers.local import LocalWorkers
from byob.workers.scheduler import Scheduler

log = logging.getLogger("byob.runtime")


def is_production(byob: Byob) -> bool:
    return byob.settings.state_url.startswith(("postgresql", "postgres://"))


@dataclass
class Runtime:
    byob: Byob
    dispatcher: Any  # LocalWorkers or QueueDispatcher: .trigger(...), .shutdown()
    scheduler: Scheduler
    queue_probe: Any
    notifier: Any = None

    def stop(self) -> None:
        self.scheduler.stop()
        self.dispatcher.shutdown(wait=True)
        if self.notifier is not None:
            self.notifier.close()


def attach_notifier(byob: Byob) -> Any:
    """Send byob's events to the operator's webhook, if one is configured."""
    if not byob.settings.webhook_url:
        return None
    from byob.webhooks import WebhookNotifier

    if not byob.settings.webhook_secret:
        raise ConfigError(
            "BYOB_WEBHOOK_URL needs BYOB_WEBHOOK_SECRET to sign its bodies",
            field="BYOB_WEBHOOK_SECRET",
        )
    notifier = WebhookNotifier(byob.settings.webhook_url, byob.settings.webhook_secret)
    byob.on_event = notifier
    return notifier


def build_runtime(byob: Byob, *, threads: int = 2) -> Runtime:
    notifier = attach_notifier(byob)
    if is_production(byob):
        from byob.workers import queue as q

        jobs = q.make_queue(byob.settings.state_url)
        q.ensure_schema(jobs)
        dispatcher: Any = q.QueueDispatcher(byob, jobs)
        probe = lambda: q.queue_depth(jobs)  # noqa: E731
    else:
        byob.concurrent_transfers = threads
        dispatcher = LocalWorkers(byob, threads=threads)
        probe = dispatcher.queue_depth
    scheduler = Scheduler(byob, lambda conn: dispatcher.trigger(conn.id))
    return Runtime(
        byob=byob, dispatcher=dispatcher, scheduler=scheduler, queue_probe=probe, notifier=notifier
    )
