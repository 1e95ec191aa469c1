"""The use cases: the one place where byob's rules are applied. The CLI, the REST API, the web
pages and the workers parse input, call one of these and render what it returns."""

from __future__ import annotations

from datetime import datetime

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
    """Every use case, over one set of adapters."""

    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self.models = ModelService(adapters)
        self.deletes = DeleteService(adapters)  # hard-delete capture in the source
        self.connections = ConnectionService(adapters, self.models)
        self.links = LinkService(adapters, self.connections)
        self.api_keys = ApiKeyService(adapters)
        self.imports = ImportService(adapters, self.connections)
        self.transfers = TransferService(adapters, self.connections, self.imports)
        self.schedules = ScheduleService(adapters, self.transfers)
        self.figures = FigureService(adapters, self.transfers)
        self.secrets = SecretService(adapters)
        self.manifests = ManifestService(adapters)  # signing keys; verifying deliveries
        self.health = HealthService(adapters)
        self.webhooks = WebhookService(adapters)
        self.guard = GuardService(adapters)  # request budgets and sign-in lockouts

    def now(self) -> datetime:
        return self.adapters.clock()
