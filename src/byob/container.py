"""The container: byob's adapters, built from settings at an entry point (never at import
time) and handed to the use cases in `byob.services`. It holds no rule of its own."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from byob.destinations.base import Destination
from byob.destinations.local import LocalDestination
from byob.domain.connections import AuthKind, Connection, ConnectionType
from byob.domain.signing import Keyring
from byob.domain.transfers import TransferRecord
from byob.engine.parquet_files import use_returning_allocator
from byob.engine.transfer import EngineOptions, TransferRunner
from byob.errors import ConfigError, SourceError
from byob.models_file import ModelsFile, load_models_file
from byob.services.events import Events, NoEvents
from byob.settings import Settings
from byob.sources.base import Source
from byob.store import secrets as secret_store
from byob.store import signing_keys
from byob.store.db import create_engine, migrate
from byob.store.state import StateStore

if TYPE_CHECKING:
    # boto3 and botocore take ~0.15 s to import; a transfer to a local directory never needs
    # them, so they are imported where AWS is first used.
    from byob.aws.import_objects import S3ImportObjects
    from byob.aws.sessions import AwsSessions
    from byob.aws.templates import S3TemplateStore
    from byob.destinations.checks import ConnectionChecks
    from byob.destinations.glue import GlueCatalog
    from byob.domain.imports import ImportSpec
    from byob.sources.deleted_rows import PostgresDeleteCapture
    from byob.sources.import_target import PostgresImportTarget

Clock = Callable[[], datetime]


class Byob:
    """Settings → the state store, secrets, AWS, the source, destinations and events."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        aws: AwsSessions | None = None,
        db: sa.Engine | None = None,
        events: Events | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        use_returning_allocator()
        self.db = db or create_engine(settings.state_url)
        self.state = StateStore(self.db)
        self._aws = aws
        self._events = events
        self._principal: str | None = None
        self._sources = threading.local()
        self._sources_lock = threading.Lock()
        self._all_sources: list[Source] = []
        # Source connections are closed even when a container is dropped without close().
        weakref.finalize(self, _close_all, self._all_sources)
        # How many transfers this process runs at once (worker threads, `--parallel`): they
        # share one memory budget (EngineOptions.shared_by).
        self.concurrent_transfers = 1

    def migrate(self) -> None:
        migrate(self.db)

    def close(self) -> None:
        """Deliver what events are queued, close source connections and the state store."""
        if self._events is not None:
            self._events.close()
        with self._sources_lock:
            _close_all(self._all_sources)
        self.db.dispose()

    # -- outward ------------------------------------------------------------------------------

    @property
    def events(self) -> Events:
        """The operator's webhook when one is configured; else events go nowhere."""
        if self._events is None:
            if self.settings.webhook_url:
                from byob.workers.webhooks import OutboxEvents, WebhookDeliverer

                if not self.settings.webhook_secret:
                    raise ConfigError(
                        "BYOB_WEBHOOK_URL needs BYOB_WEBHOOK_SECRET to sign its bodies",
                        field="BYOB_WEBHOOK_SECRET",
                    )
                deliverer = WebhookDeliverer(
                    self.state,
                    self.settings.webhook_url,
                    self.settings.webhook_secret,
                    clock=self.clock,
                )
                self._events = OutboxEvents(self.state, self.clock, deliverer)
            else:
                self._events = NoEvents()
        return self._events

    @events.setter
    def events(self, events: Events) -> None:
        """Send events elsewhere (an embedding application, a test's recorder)."""
        self._events = events

    @property
    def aws(self) -> AwsSessions:
        if self._aws is None:
            from byob.aws.sessions import AwsConfig, AwsSessions

            self._aws = AwsSessions(
                AwsConfig(
                    endpoint_url=self.settings.aws_endpoint_url,
                    max_attempts=self.settings.aws_max_attempts,
                )
            )
        return self._aws

    @cached_property
    def secrets(self) -> secret_store.SecretBox:
        return secret_store.load_or_create_key(
            self.settings.secret_key, self.settings.home, self.settings.secret_keys_old
        )

    @property
    def signing_keys(self) -> Keyring:
        """Read on each use (a small file, or settings): after `byob keys rotate` in another
        process, the next manifest is signed with the new key without a restart."""
        return signing_keys.load_keyring(
            self.settings.signing_key, self.settings.signing_keys_old, self.settings.home
        )

    @cached_property
    def models_file(self) -> ModelsFile:
        if self.settings.config is None:
            raise ConfigError(
                "no models file: pass --config FILE or set BYOB_CONFIG", field="BYOB_CONFIG"
            )
        models_file = load_models_file(self.settings.config)
        if any(m.hashed for m in models_file.models):
            self.hash_salt  # noqa: B018 - required now, not at the first transfer
        return models_file

    @cached_property
    def hash_salt(self) -> bytes:
        """Keys hashed columns: BYOB_HASH_SALT, or (embedded default) a file in home."""
        return secret_store.load_or_create_salt(
            self.settings.hash_salt, self.settings.home, production=self.settings.is_production
        )

    @contextmanager
    def source(self) -> Iterator[Source]:
        """This thread's source connection, kept between transfers: opening one costs a
        catalog load (~100 ms with ADBC), which dominates transfers that move few rows. A
        connection that failed is dropped and the next transfer opens a fresh one."""
        cached: Source | None = getattr(self._sources, "source", None)
        if cached is None:
            cached = open_source(self.models_file.source.url)
            self._sources.source = cached
            with self._sources_lock:
                self._all_sources.append(cached)
        try:
            yield cached
        except SourceError:
            self._sources.source = None
            with self._sources_lock:
                self._all_sources.remove(cached)
            cached.close()
            raise

    def service_principal(self) -> str:
        """The AWS principal byob runs as: every trust policy names it. Asked of STS once per
        process (every policy shown would otherwise cost a round trip); a failure is not
        remembered, so the next request asks again."""
        if self._principal is None:
            self._principal = self.settings.service_principal_arn or self.aws.caller_arn()
        return self._principal

    @cached_property
    def _templates(self) -> S3TemplateStore:
        from byob.aws.templates import S3TemplateStore

        return S3TemplateStore(self.aws)

    def import_target(self) -> PostgresImportTarget:
        from byob.sources.import_target import PostgresImportTarget  # psycopg, pyarrow.csv

        url = self.models_file.source.url
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "imports load into PostgreSQL: the models file's [source] url must be "
                "postgresql://…",
                field="source.url",
            )
        return PostgresImportTarget(url)

    def import_objects(self, conn: Connection) -> S3ImportObjects:
        from byob.aws.import_objects import S3ImportObjects

        return S3ImportObjects(
            self.aws.connection_client(conn, "s3", self.secret_of(conn)),
            conn.bucket,
            region=conn.region,
            who=_who(conn),
        )

    def delete_capture(self) -> PostgresDeleteCapture:
        from byob.sources.deleted_rows import PostgresDeleteCapture  # psycopg

        url = self.models_file.source.url
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "capturing hard deletes needs a PostgreSQL source (a trigger records them): "
                "the models file's [source] url must be postgresql://…",
                field="source.url",
            )
        return PostgresDeleteCapture(url)

    def publish_template(self, *, bucket: str, key: str, text: str, expires_in: int) -> str:
        """Upload a CloudFormation template with byob's own identity; a presigned URL of it."""
        return self._templates.publish(bucket=bucket, key=key, text=text, expires_in=expires_in)

    def secret_of(self, conn: Connection) -> str | None:
        if conn.auth is not AuthKind.HMAC:
            return None
        sealed = self.state.connections.sealed_secret(conn.id)
        return self.secrets.open(sealed, context=conn.id) if sealed else None

    def destination(self, conn: Connection) -> Destination:
        """Where a transfer writes: its S3 client is kept for the connection's next one."""
        if conn.type is ConnectionType.LOCAL:
            return LocalDestination(conn.path)
        secret = self.secret_of(conn)
        return self._s3_destination(conn, lambda: self.aws.connection_client(conn, "s3", secret))

    def _s3_destination(self, conn: Connection, client_of: Callable[[], Any]) -> Destination:
        from byob.destinations.s3 import S3Destination

        return S3Destination(
            client_of,
            bucket=conn.bucket,
            region=conn.region,
            who=_who(conn),
            part_bytes=self.engine_options().part_bytes,
        )

    def catalog(self, conn: Connection) -> GlueCatalog | None:
        if conn.type is not ConnectionType.ATHENA:
            return None
        from byob.destinations.glue import GlueCatalog

        secret = self.secret_of(conn)
        return GlueCatalog(
            lambda: self.aws.connection_client(conn, "glue", secret),
            account_id=conn.account_id,
            database=conn.schema,
            bucket=conn.bucket,
            who=_who(conn),
        )

    def checks(self, conn: Connection) -> ConnectionChecks:
        from byob.destinations.checks import ConnectionChecks

        if conn.type is ConnectionType.LOCAL:
            destination: Destination = LocalDestination(conn.path)
        else:
            # A session of its own, never the transfers' cached one: validation proves what
            # the recipient's role and keys allow now.
            session = self.aws.for_connection(conn, self.secret_of(conn))
            client = self.aws.client(session, "s3", conn.region)
            destination = self._s3_destination(conn, lambda: client)
        return ConnectionChecks(
            conn=conn,
            destination=destination,
            aws=None if conn.type is ConnectionType.LOCAL else self.aws,
            secret_access_key=self.secret_of(conn),
            timeout=self.settings.check_timeout_seconds,
            strict_trust=self.settings.trust_check_is_strict,
            import_spec=self._declared_import(conn),
        )

    def _declared_import(self, conn: Connection) -> ImportSpec | None:
        """The import an import connection loads, None when the models file lost it (its
        validation then says so)."""
        if not conn.is_import:
            return None
        try:
            return self.models_file.import_spec(conn.import_name)
        except ConfigError:
            return None

    # -- transfers ------------------------------------------------------------------------------

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            settle_lag=timedelta(seconds=self.settings.settle_lag_seconds),
            row_group_bytes=self.settings.row_group_bytes,
            file_target_bytes=self.settings.file_target_bytes,
            part_bytes=self.settings.multipart_part_bytes,
            fan_out_buffer_bytes=self.settings.fan_out_buffer_bytes,
        ).shared_by(self.concurrent_transfers)

    def runner(
        self,
        conn: Connection,
        source: Source,
        on_commit: Callable[[Any, TransferRecord], None] | None = None,
    ) -> TransferRunner:
        return TransferRunner(
            on_commit=on_commit,
            conn=conn,
            source=source,
            destination=self.destination(conn),
            transfers=self.state.transfers,
            options=self.engine_options(),
            clock=self.clock,
            catalog=self.catalog(conn),
            signer=self.signing_keys.current,
            hash_salt=self.hash_salt if any(m.hashed for m in self.models_file.models) else None,
        )


def open_source(url: str, *, decimal_for_unconstrained: int | None = None) -> Source:
    """The adapter for a source URL: postgresql://… or sqlite:///path."""
    if url.startswith(("postgresql://", "postgres://")):
        from byob.sources.postgres import AdbcPostgresSource

        return AdbcPostgresSource(url, decimal_for_unconstrained=decimal_for_unconstrained)
    if url.startswith("sqlite:///"):
        from byob.sources.sqlite import SqliteSource

        return SqliteSource(url.removeprefix("sqlite:///"))
    from byob.errors import ConfigError

    raise ConfigError("source url must start with postgresql:// or sqlite:///", field="source.url")


def _who(conn: Connection) -> str:
    """Whose permissions an AWS refusal is about, for messages."""
    if conn.auth is AuthKind.ROLE:
        return f"role {conn.role_name or conn.role_arn}"
    return f"the IAM user of access key {conn.access_key_id}"


def _close_all(sources: list[Source]) -> None:
    while sources:
        sources.pop().close()
