"""The application: wires settings, the state store, AWS and the source into the operations
every interface (CLI, API, workers) calls. Built at entry points, never at import time."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from byob.config import ProjectConfig, load_config
from byob.destinations.base import Destination
from byob.destinations.local import LocalDestination
from byob.domain import connections as rules
from byob.domain import fields as field_rules
from byob.domain.connections import AuthKind, Connection, ConnectionType
from byob.domain.models import ResolvedModel, resolve

if TYPE_CHECKING:
    # boto3 and botocore take ~0.15 s to import; a transfer to a local directory never needs
    # them, so they are imported where AWS is first used.
    from byob.aws.sessions import AwsSessions
    from byob.destinations.checks import CheckResult
    from byob.destinations.glue import GlueCatalog
from byob.engine.parquet_files import use_returning_allocator
from byob.engine.transfer import EngineOptions, Progress, TransferResult, TransferRunner
from byob.errors import ConfigError, ConflictError, InvalidFieldError, SourceError
from byob.settings import Settings
from byob.sources.base import Source, open_source
from byob.store import secrets as secret_store
from byob.store.access import AuditLog
from byob.store.db import create_engine, migrate
from byob.store.repositories import Connections, Transfers, Validation, Validations, new_id

Clock = Callable[[], datetime]


class Byob:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        aws: AwsSessions | None = None,
        engine: sa.Engine | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        use_returning_allocator()
        self.engine = engine or create_engine(settings.state_url)
        self._aws = aws
        self.connections = Connections(self.engine)
        self.validations = Validations(self.engine)
        self.transfers = Transfers(self.engine)
        self.audit_log = AuditLog(self.engine)
        self._sources = threading.local()
        self._sources_lock = threading.Lock()
        self._all_sources: list[Source] = []
        # Source connections are closed even when an app is dropped without close().
        weakref.finalize(self, _close_all, self._all_sources)
        # Called with (event, payload) on transfer outcomes and failing connections (webhooks).
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None
        # How many transfers this process runs at once (worker threads, `--parallel`): they
        # share one memory budget (EngineOptions.shared_by).
        self.concurrent_transfers = 1

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        with self._sources_lock:
            _close_all(self._all_sources)
        self.engine.dispose()

    # -- wiring ------------------------------------------------------------------------------

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
        return secret_store.load_or_create_key(self.settings.secret_key, self.settings.home)

    @cached_property
    def config(self) -> ProjectConfig:
        if self.settings.config is None:
            raise ConfigError(
                "no models file: pass --config FILE or set BYOB_CONFIG", field="BYOB_CONFIG"
            )
        return load_config(self.settings.config)

    @contextmanager
    def source(self) -> Iterator[Source]:
        """This thread's source connection, kept between transfers: opening one costs a
        catalog load (~100 ms with ADBC), which dominates transfers that move few rows. A
        connection that failed is dropped and the next transfer opens a fresh one."""
        cached: Source | None = getattr(self._sources, "source", None)
        if cached is None:
            cached = open_source(self.config.source.url)
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
        return self.settings.service_principal_arn or self.aws.caller_arn()

    def secret_of(self, conn: Connection) -> str | None:
        if conn.auth is not AuthKind.HMAC:
            return None
        sealed = self.connections.sealed_secret(conn.id)
        return self.secrets.open(sealed, context=conn.id) if sealed else None

    def destination(self, conn: Connection) -> Destination:
        if conn.type is ConnectionType.LOCAL:
            return LocalDestination(conn.path)
        from byob.destinations.s3 import S3Destination

        session = self.aws.for_connection(conn, self.secret_of(conn))
        return S3Destination(
            self.aws.client(session, "s3", conn.region),
            bucket=conn.bucket,
            region=conn.region,
            who=_who(conn),
            part_bytes=self.engine_options().part_bytes,
        )

    # -- connections -------------------------------------------------------------------------

    def audit(
        self, *, actor: str, action: str, connection_id: str | None, changes: dict[str, Any]
    ) -> None:
        self.audit_log.record(
            actor=actor,
            action=action,
            connection_id=connection_id,
            changes=changes,
            now=self.clock(),
        )

    def create_connection(
        self, *, secret_access_key: str | None = None, actor: str = "cli", **fields: Any
    ) -> Connection:
        cid = new_id()
        if secret_access_key is not None and not fields.get("access_key_id"):
            raise InvalidFieldError(
                "a secret access key goes with an access key ID; give both, or neither for "
                "role-based access",
                field="access_key_id",
            )
        if secret_access_key is not None:
            secret_access_key = field_rules.secret_access_key(secret_access_key)
        fingerprint = secret_store.fingerprint(secret_access_key) if secret_access_key else ""
        conn = rules.new_connection(
            id=cid, now=self.clock(), secret_fingerprint=fingerprint, **fields
        )
        sealed = self.secrets.seal(secret_access_key, context=cid) if secret_access_key else None
        self.connections.add(conn, secret_sealed=sealed)
        self.audit(
            actor=actor,
            action="connection.create",
            connection_id=cid,
            changes=rules.describe_changes(_blank(conn), conn),
        )
        return conn

    def update_connection(
        self,
        name: str,
        changes: dict[str, Any],
        *,
        secret_access_key: str | None = None,
        actor: str = "cli",
    ) -> Connection:
        """Change fields (each checked); changing where or how it writes returns it to draft,
        which stops its transfers until it is validated and activated again."""
        conn = self.connections.get(name)
        changes = dict(changes)
        sealed = None
        if secret_access_key is not None and not (
            changes.get("access_key_id") or conn.access_key_id
        ):
            raise InvalidFieldError(
                "a secret access key goes with an access key ID; this connection uses a role",
                field="access_key_id",
            )
        if secret_access_key is not None:
            secret_access_key = field_rules.secret_access_key(secret_access_key)
            changes["secret_fingerprint"] = secret_store.fingerprint(secret_access_key)
            if "access_key_id" not in changes and conn.access_key_id:
                changes["access_key_id"] = conn.access_key_id
            sealed = self.secrets.seal(secret_access_key, context=conn.id)
        updated = rules.revise(conn, changes, now=self.clock())
        if updated.name != conn.name and any(
            c.name == updated.name for c in self.connections.list()
        ):
            raise ConflictError(f"a connection named {updated.name!r} already exists", field="name")
        if sealed is None and updated.auth is not AuthKind.HMAC:
            sealed = ""  # a connection moved off HMAC keeps no secret
        self.connections.save(updated, secret_sealed=sealed)
        self.audit(
            actor=actor,
            action="connection.update",
            connection_id=conn.id,
            changes=rules.describe_changes(conn, updated),
        )
        return updated

    def policies(self, conn: Connection) -> dict[str, Any]:
        out: dict[str, Any] = {"permissions_policy": rules.permissions_policy(conn)}
        if conn.auth is AuthKind.ROLE:
            out = {
                "role_name": conn.role_name,
                "role_arn": conn.role_arn,
                "external_id": conn.external_id,
                "trust_policy": rules.trust_policy(conn, self.service_principal()),
                **out,
            }
        return out

    def validate(self, name: str, *, actor: str = "cli") -> tuple[Connection, list[CheckResult]]:
        from byob.destinations.checks import ConnectionChecks, passed

        conn = self.connections.get(name)
        checks = ConnectionChecks(
            conn=conn,
            destination=self.destination(conn),
            aws=None if conn.type is ConnectionType.LOCAL else self.aws,
            secret_access_key=self.secret_of(conn),
            timeout=self.settings.check_timeout_seconds,
            strict_trust=self.settings.trust_check_is_strict,
        )
        results = checks.run()
        ok = passed(results)
        self.validations.add(
            Validation(
                connection_id=conn.id,
                fingerprint=conn.destination_fingerprint(),
                passed=ok,
                checks=[r.as_dict() for r in results],
                created_at=self.clock(),
            )
        )
        self.audit(
            actor=actor, action="connection.validate", connection_id=conn.id, changes={"passed": ok}
        )
        if ok and conn.failing_check:
            self.connections.clear_failing(conn.id)  # transfers resume
            conn = self.connections.get(conn.id)
        return conn, results

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Tell the operator's webhook (if any) that something happened."""
        if self.on_event is not None:
            self.on_event(event, payload)

    def mark_failing(self, name: str, *, check: str, message: str) -> None:
        """Stop scheduling a connection whose setup no longer works, saying why."""
        conn = self.connections.get(name)
        self.connections.mark_failing(conn.id, check=check, message=message, now=self.clock())
        self.audit(
            actor="byob",
            action="connection.failing",
            connection_id=conn.id,
            changes={"check": check, "message": message},
        )
        self.emit(
            "connection.failing",
            {"connection": conn.name, "tenant": conn.tenant, "check": check, "message": message},
        )

    def activate(self, name: str, *, actor: str = "cli") -> Connection:
        conn = self.connections.get(name)
        latest = self.validations.latest(conn.id)
        fingerprint = latest.fingerprint if latest and latest.passed else None
        active = rules.activate(conn, validated_fingerprint=fingerprint, now=self.clock())
        self.connections.save(active)
        self.audit(
            actor=actor,
            action="connection.activate",
            connection_id=conn.id,
            changes=rules.describe_changes(conn, active),
        )
        return active

    def pause(self, name: str, *, actor: str = "cli") -> Connection:
        conn = self.connections.get(name)
        paused = rules.pause(conn, now=self.clock())
        self.connections.save(paused)
        self.audit(
            actor=actor,
            action="connection.pause",
            connection_id=conn.id,
            changes=rules.describe_changes(conn, paused),
        )
        return paused

    def delete_connection(self, name: str, *, actor: str = "cli") -> None:
        """Forget a connection and its history; data already delivered stays where it is."""
        conn = self.connections.get(name)
        self.connections.delete(conn.id)
        self.audit(
            actor=actor,
            action="connection.delete",
            connection_id=conn.id,
            changes={"name": [conn.name, None]},
        )

    # -- models and transfers ----------------------------------------------------------------

    def check_models(self) -> list[ResolvedModel]:
        with self.source() as src:
            return [resolve(spec, src.columns(spec.table)) for spec in self.config.models]

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            settle_lag=timedelta(seconds=self.settings.settle_lag_seconds),
            row_group_bytes=self.settings.row_group_bytes,
            file_target_bytes=self.settings.file_target_bytes,
            part_bytes=self.settings.multipart_part_bytes,
        ).shared_by(self.concurrent_transfers)

    def catalog(self, conn: Connection) -> GlueCatalog | None:
        if conn.type is not ConnectionType.ATHENA:
            return None
        from byob.destinations.glue import GlueCatalog

        session = self.aws.for_connection(conn, self.secret_of(conn))
        return GlueCatalog(
            self.aws.client(session, "glue", conn.region),
            account_id=conn.account_id,
            database=conn.schema,
            bucket=conn.bucket,
            who=_who(conn),
        )

    def runner(self, conn: Connection, source: Source) -> TransferRunner:
        return TransferRunner(
            conn=conn,
            source=source,
            destination=self.destination(conn),
            transfers=self.transfers,
            options=self.engine_options(),
            clock=self.clock,
            catalog=self.catalog(conn),
        )

    def active_connection(self, name: str) -> Connection:
        """The connection, if it may transfer now: active and not failing."""
        conn = self.connections.get(name)
        if conn.status is not rules.Status.ACTIVE:
            raise ConflictError(
                f"connection {conn.name!r} is {conn.status}; only active connections transfer "
                f"(run `byob connections validate {conn.name}` and "
                f"`byob connections activate {conn.name}`)"
            )
        if conn.failing_check:
            raise ConflictError(
                f"connection {conn.name!r} is failing ({conn.failing_message}); once it is "
                f"fixed, `byob connections validate {conn.name}` resumes its transfers"
            )
        return conn

    def run_transfers(
        self,
        name: str,
        *,
        model: str | None = None,
        full_refresh: bool = False,
        progress: Callable[[str], Progress] | None = None,
    ) -> list[TransferResult]:
        """Run now, in this thread: every model (or one), interrupted windows first."""
        conn = self.active_connection(name)
        specs = [self.config.model(model)] if model else list(self.config.models)
        results: list[TransferResult] = []
        with self.source() as src:
            runner = self.runner(conn, src)
            for spec in specs:
                results += runner.run(
                    spec,
                    full_refresh=full_refresh,
                    progress=progress(spec.name) if progress else None,
                )
        return results


def _blank(conn: Connection) -> Connection:
    """An empty connection to describe a creation as changes from nothing."""
    return Connection(
        id=conn.id,
        name="",
        tenant="",
        type=conn.type,
        status=conn.status,
        auth=conn.auth,
        workgroup=conn.workgroup,
        created_at=conn.created_at,
        updated_at=conn.updated_at,
    )


def _who(conn: Connection) -> str:
    """Whose permissions an AWS refusal is about, for messages."""
    if conn.auth is AuthKind.ROLE:
        return f"role {conn.role_name or conn.role_arn}"
    return f"the IAM user of access key {conn.access_key_id}"


def _close_all(sources: list[Source]) -> None:
    while sources:
        sources.pop().close()
