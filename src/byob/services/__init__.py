"""The use cases: the one place where byob's rules are applied. The CLI, the REST API, the web
pages and the workers parse input, call one of these and render what it returns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from byob.lazy import Lazy

if TYPE_CHECKING:
    from byob.services.api_keys import ApiKeyService
    from byob.services.connections import ConnectionService
    from byob.services.deletes import DeleteService
    from byob.services.figures import FigureService
    from byob.services.guard import GuardService
    from byob.services.health import HealthService
    from byob.services.imports import ImportService
    from byob.services.links import LinkService
    from byob.services.manifests import ManifestService
    from byob.services.models import ModelService
    from byob.services.ports import Adapters
    from byob.services.schedules import ScheduleService
    from byob.services.secrets import SecretService
    from byob.services.transfers import TransferService
    from byob.services.webhooks import WebhookService


class Services:
    """Every use case, over one set of adapters, each made (and its module imported) on first
    use (`byob.lazy`): a CLI command loads the use cases it runs, not all of them."""

    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    models: Lazy[ModelService] = Lazy("byob.services.models.ModelService", lambda s: (s.adapters,))
    # hard-delete capture in the source
    deletes: Lazy[DeleteService] = Lazy(
        "byob.services.deletes.DeleteService", lambda s: (s.adapters,)
    )
    connections: Lazy[ConnectionService] = Lazy(
        "byob.services.connections.ConnectionService", lambda s: (s.adapters, s.models)
    )
    links: Lazy[LinkService] = Lazy(
        "byob.services.links.LinkService", lambda s: (s.adapters, s.connections)
    )
    api_keys: Lazy[ApiKeyService] = Lazy(
        "byob.services.api_keys.ApiKeyService", lambda s: (s.adapters,)
    )
    imports: Lazy[ImportService] = Lazy(
        "byob.services.imports.ImportService", lambda s: (s.adapters, s.connections)
    )
    transfers: Lazy[TransferService] = Lazy(
        "byob.services.transfers.TransferService", lambda s: (s.adapters, s.connections, s.imports)
    )
    schedules: Lazy[ScheduleService] = Lazy(
        "byob.services.schedules.ScheduleService", lambda s: (s.adapters, s.transfers)
    )
    figures: Lazy[FigureService] = Lazy(
        "byob.services.figures.FigureService", lambda s: (s.adapters, s.transfers)
    )
    secrets: Lazy[SecretService] = Lazy(
        "byob.services.secrets.SecretService", lambda s: (s.adapters,)
    )
    # signing keys; verifying deliveries
    manifests: Lazy[ManifestService] = Lazy(
        "byob.services.manifests.ManifestService", lambda s: (s.adapters,)
    )
    health: Lazy[HealthService] = Lazy(
        "byob.services.health.HealthService", lambda s: (s.adapters,)
    )
    webhooks: Lazy[WebhookService] = Lazy(
        "byob.services.webhooks.WebhookService", lambda s: (s.adapters,)
    )
    # request budgets and sign-in lockouts
    guard: Lazy[GuardService] = Lazy("byob.services.guard.GuardService", lambda s: (s.adapters,))

    def now(self) -> datetime:
        return self.adapters.clock()
