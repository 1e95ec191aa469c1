"""How `byob serve` and `byob worker` run: embedded (SQLite state, threads in one process) or
production (PostgreSQL state, Procrastinate workers on any number of machines)."""

from __future__ import annotations

from dataclasses import dataclass

from byob.services import Services
from byob.services.transfers import Dispatcher
from byob.workers.local import LocalWorkers
from byob.workers.scheduler import Scheduler


@dataclass
class Runtime:
    services: Services
    dispatcher: Dispatcher
    scheduler: Scheduler

    def stop(self) -> None:
        self.scheduler.stop()
        self.dispatcher.shutdown(wait=True)
        self.services.transfers.dispatcher = None


def build_runtime(services: Services, *, threads: int = 2) -> Runtime:
    """The dispatcher that runs triggered and scheduled transfers, and the scheduler."""
    adapters = services.adapters
    adapters.events.start()  # delivers webhooks: a URL without its secret fails here, at start
    dispatcher: Dispatcher
    if adapters.settings.is_production:
        from byob.workers import queue as q

        jobs = q.make_queue(adapters.settings.state_url)
        q.ensure_schema(jobs, adapters.state)
        dispatcher = q.QueueDispatcher(services, jobs)
    else:
        adapters.concurrent_transfers = threads
        dispatcher = LocalWorkers(services, threads=threads)
    services.transfers.dispatcher = dispatcher
    return Runtime(services=services, dispatcher=dispatcher, scheduler=Scheduler(services))
