"""The use cases: the one place where byob's rules are applied. The CLI, the REST API, the web
pages and the workers parse input, call one of these and render what it returns."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

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

_Service = TypeVar("_Service")


class Services:
    """Every use case, over one set of adapters.

    Each is built (and its module imported) on first use: a CLI command loads the use cases it
    runs, not all of them (start-up time). The web app and the workers share one Services
    across threads, so each is built once under a lock, never twice."""

    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self._built: dict[str, Any] = {}
        self._building = threading.RLock()  # re-entrant: a service's build asks for others

    def _once(self, name: str, build: Callable[[], _Service]) -> _Service:
        with self._building:
            if name not in self._built:
                self._built[name] = build()
            service: _Service = self._built[name]
            return service

    @cached_property
    def models(self) -> ModelService:
        from byob.services.models import ModelService

        return self._once("models", lambda: ModelService(self.adapters))

    @cached_property
    def deletes(self) -> DeleteService:  # hard-delete capture in the source
        from byob.services.deletes import DeleteService

        return self._once("deletes", lambda: DeleteService(self.adapters))

    @cached_property
    def connections(self) -> ConnectionService:
        from byob.services.connections import ConnectionService

        return self._once("connections", lambda: ConnectionService(self.adapters, self.models))

    @cached_property
    def links(self) -> LinkService:
        from byob.services.links import LinkService

        return self._once("links", lambda: LinkService(self.adapters, self.connections))

    @cached_property
    def api_keys(self) -> ApiKeyService:
        from byob.services.api_keys import ApiKeyService

        return self._once("api_keys", lambda: ApiKeyService(self.adapters))

    @cached_property
    def imports(self) -> ImportService:
        from byob.services.imports import ImportService

        return self._once("imports", lambda: ImportService(self.adapters, self.connections))

    @cached_property
    def transfers(self) -> TransferService:
        from byob.services.transfers import TransferService

        return self._once(
            "transfers", lambda: TransferService(self.adapters, self.connections, self.imports)
        )

    @cached_property
    def schedules(self) -> ScheduleService:
        from byob.services.schedules import ScheduleService

        return self._once("schedules", lambda: ScheduleService(self.adapters, self.transfers))

    @cached_property
    def figures(self) -> FigureService:
        from byob.services.figures import FigureService

        return self._once("figures", lambda: FigureService(self.adapters, self.transfers))

    @cached_property
    def secrets(self) -> SecretService:
        from byob.services.secrets import SecretService

        return self._once("secrets", lambda: SecretService(self.adapters))

    @cached_property
    def manifests(self) -> ManifestService:  # signing keys; verifying deliveries
        from byob.services.manifests import ManifestService

        return self._once("manifests", lambda: ManifestService(self.adapters))

    @cached_property
    def health(self) -> HealthService:
        from byob.services.health import HealthService

        return self._once("health", lambda: HealthService(self.adapters))

    @cached_property
    def webhooks(self) -> WebhookService:
        from byob.services.webhooks import WebhookService

        return self._once("webhooks", lambda: WebhookService(self.adapters))

    @cached_property
    def guard(self) -> GuardService:  # request budgets and sign-in lockouts
        from byob.services.guard import GuardService

        return self._once("guard", lambda: GuardService(self.adapters))

    def now(self) -> datetime:
        return self.adapters.clock()
