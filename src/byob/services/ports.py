"""What the use cases need from the outside world. `byob.container.Byob` provides it from
settings; tests may provide it otherwise."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from byob.domain.connections import Connection
from byob.domain.signing import Keyring
from byob.domain.transfers import TransferRecord
from byob.engine.transfer import EngineOptions, TransferRunner
from byob.models_file import ModelsFile
from byob.services.events import Events
from byob.settings import Settings
from byob.sources.base import Source
from byob.store.secrets import SecretBox
from byob.store.state import StateStore

if TYPE_CHECKING:
    from byob.destinations.checks import ConnectionChecks
    from byob.engine.importer import ImportObjects, ImportTarget
    from byob.sources.deleted_rows import PostgresDeleteCapture


class Adapters(Protocol):
    settings: Settings
    state: StateStore
    clock: Callable[[], datetime]
    concurrent_transfers: int

    @property
    def events(self) -> Events: ...

    @property
    def secrets(self) -> SecretBox: ...

    @property
    def signing_keys(self) -> Keyring: ...

    @property
    def models_file(self) -> ModelsFile: ...

    def source(self) -> AbstractContextManager[Source]: ...

    def service_principal(self) -> str: ...

    def import_target(self) -> ImportTarget:
        """Where imports land: the models file's [source] database (PostgreSQL only)."""
        ...

    def import_objects(self, conn: Connection) -> ImportObjects:
        """An import connection's files in the tenant's bucket, read with its credentials."""
        ...

    def delete_capture(self) -> PostgresDeleteCapture:
        """Hard-delete capture in the models file's [source] database (PostgreSQL only)."""
        ...

    def publish_template(self, *, bucket: str, key: str, text: str, expires_in: int) -> str:
        """Upload a template to byob's own bucket; a presigned URL of it (TemplateBucketError)."""
        ...

    def checks(self, conn: Connection) -> ConnectionChecks: ...

    def engine_options(self) -> EngineOptions: ...

    def runner(
        self,
        conn: Connection,
        source: Source,
        on_commit: Callable[[Any, TransferRecord], None] | None = None,
    ) -> TransferRunner: ...
