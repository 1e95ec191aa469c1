"""Connection use cases: create, update, validate, activate, pause, resume, delete, and what
every front door shows of a connection. Each change and its audit entry commit together."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from byob.domain import connections as rules
from byob.domain import fields as field_rules
from byob.domain import ids, role_setup
from byob.domain.connections import AuthKind, Connection, ConnectionType, Validation
from byob.domain.fixes import recipient_fix
from byob.domain.paging import Page, cursors, every
from byob.domain.policies import StatementChange, diff_statements
from byob.errors import (
    ByobError,
    ConflictError,
    InvalidFieldError,
    NotFoundError,
    TemplateBucketError,
)
from byob.services.events import Event, about
from byob.services.models import ModelService
from byob.services.ports import Adapters
from byob.services.views import connection_view, validation_view
from byob.store import secrets as secret_store
from byob.store.repository import new_id
from byob.store.state import StateStore

if TYPE_CHECKING:
    from byob.destinations.checks import CheckResult
    from byob.domain.credentials import Link  # not loaded at start-up: a type only here

log = logging.getLogger("byob.connections")


@dataclass(frozen=True, kw_only=True)
class Created:
    connection: Connection
    policies: dict[str, Any]  # what the recipient pastes into IAM (empty for local)
    tenant_rows: int | None = None  # in all models together; None when it could not be counted
    warnings: tuple[str, ...] = ()


POLICY_CHANGED = (
    "the permissions policy changed: the recipient must paste the new one into IAM again "
    "before the connection is validated and activated"
)


@dataclass(frozen=True, kw_only=True)
class Updated:
    connection: Connection
    # The permissions policy's statements that changed; empty when it is as it was.
    policy_changes: tuple[StatementChange, ...] = ()
    permissions_policy: dict[str, Any] | None = None  # the new one, to paste (None: local)

    def policy_changed(self) -> dict[str, Any] | None:
        """The note, the statements' diff and the new policy; None when nothing changed."""
        if not self.policy_changes:
            return None
        return {
            "message": POLICY_CHANGED,
            "statements": [c.as_dict() for c in self.policy_changes],
            "permissions_policy": self.permissions_policy,
        }


@dataclass(frozen=True, kw_only=True)
class Validated:
    connection: Connection  # as it is after the validation (a passing one clears failing)
    results: list[CheckResult]
    passed: bool
    validation: Validation


class ConnectionService:
    def __init__(self, adapters: Adapters, models: ModelService) -> None:
        self.adapters = adapters
        self.state = adapters.state
        self.models = models
        # (bucket, AWS error code) pairs already logged: a warning once, not on every page view.
        self._template_failures: set[tuple[str, str]] = set()

    # -- reading --------------------------------------------------------------------------------

    def get(self, name_or_id: str, *, field: str = "name") -> Connection:
        """A connection by ID, by name, by tenant/name, or, git-style, by a start of its ID
        that no other connection's has (a name wins over the start of an ID). ``field``: what
        the caller called it, named by the error when there is none, or more than one."""
        try:
            return self._get(name_or_id)
        except (NotFoundError, ConflictError) as exc:
            if exc.field in (None, field):  # none named (an ambiguous ID start), or the same
                raise
            raise type(exc)(exc.message, field=field) from None

    def _get(self, name_or_id: str) -> Connection:
        try:
            return self.state.connections.get(name_or_id)
        except NotFoundError:
            prefix = ids.prefix_of(name_or_id)
            if prefix is None or len(prefix) == ids.ID_LENGTH:
                raise
            found = self.state.connections.ids_starting_with(prefix, ids.SHOWN + 1)
        if not found:
            raise NotFoundError(
                f"no connection named {name_or_id!r}, nor one whose ID starts with it", field="name"
            )
        return self.state.connections.get(ids.one_of("connection", prefix, found))

    def all(self) -> list[Connection]:
        """Every connection, oldest first (lists page with `listing`)."""
        return self.state.connections.all()

    def listing(
        self,
        *,
        tenant: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> Page[dict[str, Any]]:
        """A page of connection views, in one query however deep the page; ``after`` and
        ``before`` are the cursors of a previous page's ``next`` and ``previous``."""
        start_after, end_before = cursors(after, before)
        found = self.state.connection_pages.page(
            tenant=tenant, after=start_after, before=end_before, limit=limit
        )
        now = self.adapters.clock()
        offered = self._offered_if_readable()
        views = [
            connection_view(
                x.connection,
                validation=x.validation,
                last_transfer=x.last_transfer,
                now=now,
                offered=offered,
            )
            for x in found.items
        ]
        return Page(items=views, total=found.total, next=found.next, previous=found.previous)

    def every_view(self, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """The views of all of them, a page (one query) at a time."""
        return every(lambda after, limit: self.listing(tenant=tenant, after=after, limit=limit))

    def names(self, ids: list[str]) -> dict[str, str]:
        """The names of these connections, by ID (those that still exist)."""
        return self.state.connections.names(ids)

    def view(self, conn: Connection) -> dict[str, Any]:
        """The connection's public view, as the list shows it (one query for its latest
        validation and transfer; the connection is the one given, maybe just changed)."""
        found = self.state.connection_pages.one(conn.id)  # None: deleted meanwhile
        return connection_view(
            conn,
            validation=found.validation if found else None,
            last_transfer=found.last_transfer if found else None,
            now=self.adapters.clock(),
            offered=self._offered_if_readable(),
        )

    def validation_history(
        self, conn: Connection, *, limit: int = 20, operator_notes: bool = False
    ) -> list[dict[str, Any]]:
        """The latest validations, newest first; ``operator_notes`` for the operator's pages."""
        return [
            validation_view(v, conn, operator_notes=operator_notes)
            for v in self.state.validations.history(conn.id, limit=limit)
        ]

    def policies(self, conn: Connection, *, operator_notes: bool = False) -> dict[str, Any]:
        """The role name, ARN, external ID and trust policy (role auth) and the permissions
        policy, ready to paste; nothing for local directories. ``operator_notes`` (the
        operator's pages and CLI) adds what byob's own configuration changes about them."""
        if conn.type is ConnectionType.LOCAL:
            return {}
        role = self._role(conn)
        if role is None:
            return {"permissions_policy": rules.permissions_policy(conn)}
        return {
            "role_name": conn.role_name,
            # False: a role the recipient gave, to be given these policies, not created.
            "generated_role": conn.uses_generated_role,
            "role_arn": conn.role_arn,
            "external_id": conn.external_id,
            "trust_policy": role.trust_policy,
            "permissions_policy": role.permissions_policy,
            "role_setup": self._role_setup(conn, role, operator_notes=operator_notes),
        }

    def _role(self, conn: Connection) -> role_setup.Role | None:
        """The IAM role a role connection asks for; None for the other kinds."""
        if conn.type is ConnectionType.LOCAL or conn.auth is not AuthKind.ROLE:
            return None
        return role_setup.Role(
            name=conn.role_name,
            trust_policy=rules.trust_policy(conn, self.adapters.service_principal()),
            permissions_policy=rules.permissions_policy(conn),
            path=role_setup.role_path(conn.role_arn),
        )

    def _role_setup(
        self, conn: Connection, role: role_setup.Role, *, operator_notes: bool
    ) -> dict[str, Any]:
        """The role as a CloudFormation template (with its Launch stack link: to the template
        uploaded to BYOB_TEMPLATE_BUCKET, else to byob's own address when it is https), a
        Terraform snippet and AWS CLI commands."""
        template = role_setup.cloudformation_template(role)
        public_url = self.adapters.settings.public_url.rstrip("/")
        token = role_setup.template_token(conn.id, conn.external_id)
        template_url = f"{public_url}/connect/cloudformation/{conn.id}/{token}.json"
        stack = role_setup.stack_name(role.name)
        uploaded, operator_note = self._uploaded_template(conn, token, template)
        if uploaded is not None:
            template_url = uploaded
            note = (
                "The AWS console loads the template from Amazon S3 with a link that works for "
                "a limited time (at most 7 days): if it no longer loads, open this page again "
                'for a fresh one, or download the template and choose "Upload a template file".'
            )
        elif public_url.startswith("https://"):
            note = (
                f"The AWS console loads the template from {template_url} itself, so that "
                "address must be reachable from the internet. AWS documents CloudFormation "
                "template URLs as Amazon S3 addresses: if the console cannot load it, download "
                'the template and choose "Upload a template file" instead.'
            )
        else:
            note = (
                "A Launch stack link needs byob served at an https:// address (the AWS "
                f"console cannot fetch the template from {public_url}); download the "
                'template and choose "Upload a template file" in the CloudFormation console.'
            )
        launch_url = (
            role_setup.quick_create_url(
                region=conn.region, template_url=template_url, stack_name=stack
            )
            if uploaded is not None or public_url.startswith("https://")
            else None
        )
        cloudformation: dict[str, Any] = {
            "template": template,
            "template_url": template_url,
            "stack_name": stack,
            "launch_url": launch_url,
            "note": note,
        }
        if operator_notes and operator_note:
            cloudformation["operator_note"] = operator_note
        return {
            "cloudformation": cloudformation,
            "terraform": role_setup.terraform(role),
            "aws_cli": role_setup.aws_cli(role),
        }

    def _uploaded_template(
        self, conn: Connection, token: str, template: dict[str, object]
    ) -> tuple[str | None, str]:
        """A presigned URL of the template uploaded to BYOB_TEMPLATE_BUCKET (None when it is
        not set or the upload failed) and the note for byob's operator (empty when none)."""
        setting = self.adapters.settings.template_bucket
        if not setting:
            return None, (
                "The Launch stack link works as AWS documents only with the template in Amazon "
                "S3: set BYOB_TEMPLATE_BUCKET to a bucket (or bucket/prefix) in your AWS "
                "account that byob's own identity may write and read (s3:PutObject and "
                "s3:GetObject), and byob uploads each template there and links it."
            )
        bucket, key = role_setup.template_location(setting, conn.id, token)
        try:
            url = self.adapters.publish_template(
                bucket=bucket,
                key=key,
                text=role_setup.template_text(template),
                expires_in=role_setup.TEMPLATE_LINK_SECONDS,
            )
        except TemplateBucketError as exc:
            if (bucket, exc.aws_code) not in self._template_failures:
                self._template_failures.add((bucket, exc.aws_code))
                log.warning("BYOB_TEMPLATE_BUCKET: %s", exc.message)
            return None, (
                f"byob could not upload the CloudFormation template to BYOB_TEMPLATE_BUCKET "
                f"(s3://{bucket}/{key}): AWS answered {exc.aws_code}. Check that the bucket "
                "exists and that byob's own identity may s3:PutObject and s3:GetObject there; "
                "until then the Launch stack link points at byob's own address, if any."
            )
        return url, ""

    def published_template(self, connection_id: str, token: str) -> str:
        """The CloudFormation template at its public address, for the AWS console (which
        fetches it with no session): only the connection's exact ID with its token opens it."""
        try:
            conn = self.state.connections.get(connection_id)
        except NotFoundError:
            conn = None
        expected = role_setup.template_token(conn.id, conn.external_id) if conn else ""
        role = self._role(conn) if conn is not None and conn.id == connection_id else None
        if role is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise NotFoundError("no such CloudFormation template")
        return role_setup.template_text(role_setup.cloudformation_template(role))

    # -- changing -------------------------------------------------------------------------------

    def create(
        self,
        *,
        actor: str,
        secret_access_key: str | None = None,
        link: Link | None = None,
        **fields: Any,
    ) -> Created:
        """A draft connection, with the IAM material to paste. Everything that can fail —
        the fields, byob's own AWS identity for the trust policy, a link already used — fails
        before anything is saved; the connection, its link and its audit entry commit
        together."""
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
        if link is not None:
            fields["tenant"] = link.tenant
        conn = rules.new_connection(
            id=cid, now=self.adapters.clock(), secret_fingerprint=fingerprint, **fields
        )
        if conn.is_import:
            self.adapters.models_file.import_spec(conn.import_name)  # declared, or refused
        self._check_selection(conn)
        policies = self.policies(conn)
        sealed = (
            self.adapters.secrets.seal(secret_access_key, context=cid)
            if secret_access_key
            else None
        )
        with self.state.atomic() as tx:
            tx.connections.add(conn, secret_sealed=sealed)
            if link is not None:
                tx.links.attach(link.id, conn.id)  # one link, one connection
            self._audit(
                tx, actor, "connection.create", conn, rules.describe_changes(_blank(conn), conn)
            )
        rows, warnings = (None, ()) if conn.is_import else self._tenant_rows(conn)
        return Created(connection=conn, policies=policies, tenant_rows=rows, warnings=warnings)

    def _tenant_rows(self, conn: Connection) -> tuple[int | None, tuple[str, ...]]:
        """A tenant value that matches no row of the models the connection receives makes
        every transfer succeed with nothing in it: say so at once."""
        tenant = conn.tenant
        try:
            counts = self.models.tenant_rows(tenant, self.received_models(conn))
        except ByobError as exc:
            return None, (f"could not count the tenant's rows in the source: {exc.message}",)
        rows = sum(counts.values())
        if counts and not rows:
            return 0, (
                f"tenant {tenant!r} has no rows in any model it receives "
                f"({', '.join(counts)}): its transfers deliver nothing until it has; check that "
                "it is the tenant column's exact value",
            )
        return rows, ()

    def update(
        self,
        name: str,
        changes: dict[str, Any],
        *,
        actor: str,
        secret_access_key: str | None = None,
    ) -> Updated:
        """Change fields (each checked); changing where or how it writes returns it to draft,
        which stops its transfers until it is validated and activated again. Says how the
        permissions policy changed, if it did: the recipient must paste it again."""
        conn = self.get(name)
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
            sealed = self.adapters.secrets.seal(secret_access_key, context=conn.id)
        updated = rules.revise(conn, changes, now=self.adapters.clock())
        self._check_selection(updated)
        if sealed is None and updated.auth is not AuthKind.HMAC:
            sealed = ""  # a connection moved off HMAC keeps no secret
        added = self._newly_received(conn, updated)
        with self.state.atomic() as tx:
            tx.connections.save(updated, secret_sealed=sealed)
            for model in added:  # it starts again with a backfill: nothing missed meanwhile
                tx.transfers.restart_model(updated.id, model, now=self.adapters.clock())
            changes_made: dict[str, Any] = dict(rules.describe_changes(conn, updated))
            if added:
                changes_made["backfill"] = added
            self._audit(tx, actor, "connection.update", conn, changes_made)
        after = _permissions(updated)
        return Updated(
            connection=updated,
            policy_changes=tuple(diff_statements(_permissions(conn), after)),
            permissions_policy=after,
        )

    def offered_models(self) -> list[str]:
        """The models an export connection may receive, in the models file's order."""
        return [m.name for m in self.adapters.models_file.offered_models]

    def _offered_if_readable(self) -> list[str] | None:
        """The offered models, or None where the models file cannot be read: a view still
        shows (the commands that manage connections need no models file)."""
        try:
            return self.offered_models()
        except ByobError:
            return None

    def received_models(self, conn: Connection) -> list[str]:
        """The offered models this connection receives (its selection, else all)."""
        return conn.receives(self.offered_models())

    def _check_selection(self, conn: Connection) -> None:
        """Every model a selection names is one the models file offers."""
        if conn.models is None:
            return
        offered = self.offered_models()
        unknown = [m for m in conn.models if m not in offered]
        if unknown:
            raise InvalidFieldError(
                f"{', '.join(repr(m) for m in unknown)} "
                f"{'is not an offered model' if len(unknown) == 1 else 'are not offered models'}"
                f"; choose among: {', '.join(offered) or '(none offered)'}",
                field="models",
            )

    def _newly_received(self, before: Connection, after: Connection) -> list[str]:
        """Models the change selects that the connection did not receive before."""
        if before.models == after.models:
            return []
        offered = self.offered_models()
        had = set(before.receives(offered))
        return [m for m in after.receives(offered) if m not in had]

    def validate(self, name: str, *, actor: str) -> Validated:
        """Run the connection's checks and keep the result; a pass resumes the transfers of a
        connection that was failing."""
        from byob.destinations.checks import passed

        conn = self.get(name)
        results = self.adapters.checks(conn).run()
        for r in results:
            if r.operator_note:  # for the operator's eyes: the log, not the recipient's page
                log.info("connection %s, check %s: %s", conn.name, r.name, r.operator_note)
        ok = passed(results)
        validation = Validation(
            connection_id=conn.id,
            fingerprint=conn.destination_fingerprint(),
            passed=ok,
            checks=[r.as_dict() for r in results],
            created_at=self.adapters.clock(),
        )
        with self.state.atomic() as tx:
            tx.validations.add(validation)
            self._audit(tx, actor, "connection.validate", conn, {"passed": ok})
            if ok and conn.is_failing:
                tx.connections.clear_failing(conn.id)  # transfers resume
        if ok and conn.is_failing:
            conn = self.get(conn.id)
        return Validated(connection=conn, results=results, passed=ok, validation=validation)

    def activate(self, name: str, *, actor: str) -> Connection:
        """Draft (or paused) → active after a passing validation of its present settings. The
        link that created the connection is spent in the same transaction, whoever
        activates."""
        conn = self.get(name)
        active = rules.activate(
            conn, validated_fingerprint=self._validated_fingerprint(conn), now=self.adapters.clock()
        )
        return self._activated(conn, active, actor, "connection.activate")

    def resume(self, name: str, *, actor: str) -> Connection:
        """Paused → active, on the same condition as activation."""
        conn = self.get(name)
        active = rules.resume(
            conn, validated_fingerprint=self._validated_fingerprint(conn), now=self.adapters.clock()
        )
        return self._activated(conn, active, actor, "connection.resume")

    def pause(self, name: str, *, actor: str) -> Connection:
        conn = self.get(name)
        paused = rules.pause(conn, now=self.adapters.clock())
        with self.state.atomic() as tx:
            tx.connections.save(paused)
            self._audit(tx, actor, "connection.pause", conn, rules.describe_changes(conn, paused))
        return paused

    def delete(self, name: str, *, actor: str) -> Connection:
        """Forget a connection and its history; data already delivered stays where it is."""
        conn = self.get(name)
        with self.state.atomic() as tx:
            tx.connections.delete(conn.id)
            self._audit(tx, actor, "connection.delete", conn, {"name": [conn.name, None]})
        return conn

    def mark_failing(self, conn: Connection, *, check: str, message: str) -> None:
        """Hold the transfers of a connection whose setup no longer works, saying why; a
        passing validation releases them."""
        with self.state.atomic() as tx:
            tx.connections.mark_failing(
                conn.id, check=check, message=message, now=self.adapters.clock()
            )
            self._audit(
                tx, "byob", "connection.failing", conn, {"check": check, "message": message}
            )
            self.adapters.events.emit(
                Event.CONNECTION_FAILING,
                about(conn) | {"check": check, "message": message, "fix": recipient_fix(check)},
                tx=tx,
            )

    # -- helpers --------------------------------------------------------------------------------

    def _validated_fingerprint(self, conn: Connection) -> str | None:
        latest = self.state.validations.latest(conn.id)
        return latest.fingerprint if latest and latest.passed else None

    def _activated(
        self, before: Connection, after: Connection, actor: str, action: str
    ) -> Connection:
        now = self.adapters.clock()
        with self.state.atomic() as tx:
            tx.connections.save(after)
            spent = tx.links.spend_for(after.id, now=now)
            changes: dict[str, Any] = rules.describe_changes(before, after)
            if spent:
                changes["link_spent"] = spent
            self._audit(tx, actor, action, after, changes)
        return after

    def _audit(
        self, tx: StateStore, actor: str, action: str, conn: Connection, changes: dict[str, Any]
    ) -> None:
        tx.audit.record(
            actor=actor,
            action=action,
            connection_id=conn.id,
            changes=changes,
            now=self.adapters.clock(),
        )


def _permissions(conn: Connection) -> dict[str, Any] | None:
    """The permissions policy alone: comparing two needs no upload nor byob's identity."""
    return None if conn.type is ConnectionType.LOCAL else rules.permissions_policy(conn)


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
