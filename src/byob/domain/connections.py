"""Connections: a tenant's destination, its auth, and its lifecycle."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii as _json_string  # json.dumps's own (C)

from byob.domain import fields, policies, schedules
from byob.domain.policies import PolicyDocument
from byob.errors import ConflictError, InvalidFieldError


class ConnectionType(StrEnum):
    S3 = "s3"
    ATHENA = "athena"
    LOCAL = "local"  # a directory with the same layout; for benchmarks, tests and trials


class Direction(StrEnum):
    """Which way the data goes: byob writes the tenant's rows to the bucket, or reads the
    files the tenant drops there into the vendor's table (seed 001)."""

    EXPORT = "export"
    IMPORT = "import"


class Status(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"


class AuthKind(StrEnum):
    ROLE = "role"  # byob assumes a role in the recipient's account with the external ID
    HMAC = "hmac"  # an IAM user's access key; the secret is sealed at rest
    NONE = "none"  # local destinations


# Changing any of these points the connection somewhere else: it must be validated again.
DESTINATION_FIELDS = (
    "type",
    "bucket",
    "region",
    "base_path",
    "path",
    "auth",
    "role_arn",
    "access_key_id",
    "secret_fingerprint",
    "workgroup",
    "schema",
    "database",
    "account_id",
)


_DESTINATION_SORTED = tuple(sorted(DESTINATION_FIELDS))


@dataclass(frozen=True, kw_only=True)
class Connection:
    id: str
    name: str
    tenant: str
    type: ConnectionType
    status: Status = Status.DRAFT
    direction: Direction = Direction.EXPORT
    import_name: str = ""  # the models file's [[imports]] entry an import connection loads
    # The models an export connection receives; None: every model the models file offers
    # (so a model offered later reaches it too).
    models: tuple[str, ...] | None = None
    account_id: str = ""
    bucket: str = ""
    region: str = ""
    base_path: str = ""
    path: str = ""  # local destinations only
    auth: AuthKind = AuthKind.ROLE
    role_name: str = ""
    role_arn: str = ""
    external_id: str = ""
    access_key_id: str = ""
    # A hash of the sealed HMAC secret, so a rotated secret counts as a change; never the secret.
    secret_fingerprint: str = ""
    workgroup: str = "primary"
    schema: str = ""
    database: str = ""
    frequency_minutes: int = 1440
    first_activated_at: datetime | None = None
    last_slot: datetime | None = None
    failing_check: str | None = None
    failing_message: str | None = None
    failing_since: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def data_prefix(self) -> str:
        """The folder under the bucket (or directory) that holds the models' folders."""
        if self.type is ConnectionType.ATHENA:
            return self.schema
        return self.base_path

    def destination_fingerprint(self) -> str:
        """Identifies where and how the connection writes; a validation is only good for the
        fingerprint it ran against."""
        # Exactly json.dumps({name: str(value)}, sort_keys=True) (stored validations hold such
        # fingerprints), built directly: every row of a connections page computes one.
        material = ", ".join(
            f"{_json_string(name)}: {_json_string(str(getattr(self, name)))}"
            for name in _DESTINATION_SORTED
        )
        return hashlib.sha256(f"{{{material}}}".encode()).hexdigest()[:32]

    @property
    def is_failing(self) -> bool:
        """Its setup stopped working after activation (a transfer met AccessDenied, a deleted
        bucket, a revoked key); transfers are held until a passing validation."""
        return self.failing_check is not None

    def transfer_refusal(self) -> str | None:
        """Why this connection may not transfer now, and what to do; None when it may."""
        # Worded for every door (the recipient's pages show it too): no command names.
        if self.status is Status.DISABLED:
            return f"connection {self.name!r} is disabled; it transfers no more"
        if self.status is not Status.ACTIVE:
            then = "resume it" if self.status is Status.PAUSED else "validate it, then activate it"
            return f"connection {self.name!r} is {self.status}; only active connections transfer: {then}"
        if self.is_failing:
            return (
                f"connection {self.name!r} is failing ({self.failing_message}); once that is "
                "fixed, a passing validation resumes its transfers"
            )
        return None

    @property
    def may_transfer(self) -> bool:
        """Active and not failing: the one rule every scheduler, worker and command asks."""
        return self.transfer_refusal() is None

    def next_run(self, now: datetime) -> datetime | None:
        """When the scheduler next dispatches it: its current UTC-aligned slot if that has not
        run yet (at once, e.g. just after activation), else the next one; None if it may not
        transfer."""
        if not self.may_transfer:
            return None
        slot = schedules.due(self.frequency_minutes, last_slot=self.last_slot, now=now)
        return slot if slot is not None else schedules.next_run(self.frequency_minutes, now)

    @property
    def uses_generated_role(self) -> bool:
        """Whether its role is the one byob named for it (for the recipient to create), not
        a role the recipient gave. The generated name ends in the connection's ID prefix,
        which never changes (the name in it may be an older name of the connection)."""
        return (
            self.auth is AuthKind.ROLE
            and self.role_name.startswith("byob-")
            and self.role_name.endswith(f"-{self.id[:6].lower()}")
        )

    def unscheduled_reason(self) -> str:
        """Why ``next_run`` is None, in a few words any page can show; "" when it is not."""
        if self.status is not Status.ACTIVE:
            return f"none scheduled while the connection is {self.status}"
        if self.is_failing:
            return "none: transfers are held until the connection passes validation again"
        return ""

    def receives(self, offered: list[str]) -> list[str]:
        """Of the offered models (in the models file's order), those this connection gets."""
        if self.is_import:
            return []
        if self.models is None:
            return list(offered)
        return [name for name in offered if name in self.models]

    @property
    def is_import(self) -> bool:
        return self.direction is Direction.IMPORT

    @property
    def import_prefix(self) -> str:
        """Where an import lists the tenant's files: the base path as a folder ("" for the
        whole bucket), so ``base`` never matches a sibling ``base2/``."""
        return f"{self.base_path}/" if self.base_path else ""

    def location(self) -> str:
        if self.type is ConnectionType.LOCAL:
            return f"{self.path.rstrip('/')}/{self.data_prefix}".rstrip("/")
        return f"s3://{self.bucket}/{self.data_prefix}".rstrip("/")


@dataclass(frozen=True, kw_only=True)
class Validation:
    """One run of a connection's checks, against the settings it had then."""

    connection_id: str
    fingerprint: str
    passed: bool
    checks: list[dict[str, object]]
    created_at: datetime

    def covers(self, conn: Connection) -> bool:
        """Ran against the connection's present settings."""
        return self.fingerprint == conn.destination_fingerprint()


def new_connection(
    *,
    id: str,
    name: str,
    tenant: str,
    type: str,
    now: datetime,
    account_id: str = "",
    bucket: str = "",
    region: str = "",
    base_path: str | None = None,
    path: str = "",
    role_arn: str | None = None,
    access_key_id: str | None = None,
    secret_fingerprint: str = "",
    workgroup: str = "primary",
    schema: str = "",
    database: str = "",
    frequency_minutes: int = 1440,
    direction: str = "export",
    import_name: str = "",
    models: list[str] | tuple[str, ...] | str | None = None,
) -> Connection:
    """A draft connection with its generated external ID and role name; fields checked. An
    import connection (``direction="import"``) reads ``import_name``'s files from an S3
    bucket; whether the models file declares that import is the caller's check."""
    frequency_minutes = schedules.frequency(frequency_minutes)
    if not type.strip():
        raise fields.missing("type")
    try:
        kind = ConnectionType(type)
    except ValueError:
        raise InvalidFieldError(
            f"connection type {type!r} is not one of: s3, athena, local", field="type"
        ) from None
    way = _direction(direction)
    if way is Direction.IMPORT:
        if kind is not ConnectionType.S3:
            raise InvalidFieldError(
                f"an import reads files from an S3 bucket: its type is s3, not {kind}", field="type"
            )
        if not import_name.strip():
            raise fields.missing("import")
    elif import_name:
        raise InvalidFieldError(
            "only an import connection (direction import) names an import", field="import"
        )
    name = fields.connection_name(name)
    tenant = fields.tenant(tenant)
    if kind is ConnectionType.LOCAL:
        if not path.strip():
            raise fields.missing("path")
        return Connection(
            id=id,
            name=name,
            tenant=tenant,
            type=kind,
            path=path,
            auth=AuthKind.NONE,
            models=model_selection(models),
            base_path=fields.base_path(base_path),
            frequency_minutes=frequency_minutes,
            created_at=now,
            updated_at=now,
        )
    account_id = fields.account_id(account_id)
    bucket = fields.bucket_name(bucket)
    region = fields.region(region)
    external_id = policies.new_external_id()
    generated_role = policies.role_name(name, id[:6].lower())
    auth = AuthKind.ROLE
    if access_key_id:
        auth = AuthKind.HMAC
        access_key_id = fields.access_key_id(access_key_id)
        if not secret_fingerprint:
            raise InvalidFieldError(
                "an access key ID needs its secret access key", field="secret_access_key"
            )
    if role_arn and auth is AuthKind.HMAC:
        raise InvalidFieldError(
            "give either a role ARN or an access key, not both", field="role_arn"
        )
    arn = (
        fields.role_arn(role_arn, expected_account_id=account_id)
        if role_arn
        else policies.role_arn(account_id, generated_role)
    )
    if kind is ConnectionType.ATHENA:
        workgroup, schema, database = _athena_fields(
            workgroup=workgroup, schema=schema, database=database
        )
    else:
        workgroup, schema, database = "primary", "", ""
    return Connection(
        id=id,
        name=name,
        tenant=tenant,
        type=kind,
        account_id=account_id,
        bucket=bucket,
        region=region,
        base_path=fields.base_path(base_path),
        auth=auth,
        role_name=arn.rsplit("/", 1)[1] if auth is AuthKind.ROLE else "",
        role_arn=arn if auth is AuthKind.ROLE else "",
        external_id=external_id,
        direction=way,
        import_name=import_name.strip(),
        models=model_selection(models) if way is Direction.EXPORT else None,
        access_key_id=access_key_id or "",
        secret_fingerprint=secret_fingerprint,
        workgroup=workgroup,
        schema=schema,
        database=database,
        frequency_minutes=frequency_minutes,
        created_at=now,
        updated_at=now,
    )


def model_selection(models: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...] | None:
    """A selection as given (a list, or "a,b" from a command line): names in order, once
    each; None (or "*") is every offered model. Whether each is offered is the caller's
    check."""
    if models is None:
        return None
    names = models.split(",") if isinstance(models, str) else list(models)
    picked = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if picked == ("*",):
        return None  # back to every offered model
    if not picked:
        raise InvalidFieldError(
            "models must name at least one model (leave it out for every offered model)",
            field="models",
        )
    return picked


def _direction(value: str) -> Direction:
    try:
        return Direction((value or "export").strip())
    except ValueError:
        raise InvalidFieldError(
            f"direction {value!r} is not export or import", field="direction"
        ) from None


def _athena_fields(*, workgroup: str, schema: str, database: str) -> tuple[str, str, str]:
    ident = re.compile(r"[a-z0-9_]{1,255}")
    for field_name, value in (("schema", schema), ("database", database), ("workgroup", workgroup)):
        if not (value or "").strip():
            raise fields.missing(field_name)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", workgroup or ""):
        raise InvalidFieldError(
            "workgroup must be 1-128 letters, digits, '.', '_' or '-' (default: primary)",
            field="workgroup",
        )
    for field_name, value in (("schema", schema), ("database", database)):
        if not ident.fullmatch(value or ""):
            raise InvalidFieldError(
                f"{field_name} {value!r} must be 1-255 lowercase letters, digits or '_' "
                "(Athena lowercases names)",
                field=field_name,
            )
    if schema == database:
        raise InvalidFieldError(
            "schema and database must differ: query results must not land inside the data",
            field="database",
        )
    return workgroup, schema, database


def trust_policy(conn: Connection, service_principal_arn: str) -> PolicyDocument:
    return policies.trust_policy(service_principal_arn, conn.external_id)


def permissions_policy(conn: Connection) -> PolicyDocument:
    if conn.is_import:
        return policies.import_permissions_policy(conn.bucket, conn.base_path)
    if conn.type is ConnectionType.ATHENA:
        return policies.athena_permissions_policy(
            account_id=conn.account_id,
            workgroup=conn.workgroup,
            bucket=conn.bucket,
            schema=conn.schema,
        )
    return policies.s3_permissions_policy(conn.bucket, conn.base_path)


def activate(conn: Connection, *, validated_fingerprint: str | None, now: datetime) -> Connection:
    """Draft/paused → active, only after a passing validation of this very configuration."""
    if conn.status is Status.ACTIVE:
        return conn
    if conn.status is Status.DISABLED:
        raise ConflictError(f"connection {conn.name!r} is disabled; it cannot be activated")
    if validated_fingerprint != conn.destination_fingerprint():
        raise ConflictError(
            f"connection {conn.name!r} has no passing validation of its current settings; "
            "validate it first"
        )
    return dataclasses.replace(
        conn,
        status=Status.ACTIVE,
        updated_at=now,
        first_activated_at=conn.first_activated_at or now,
    )


def resume(conn: Connection, *, validated_fingerprint: str | None, now: datetime) -> Connection:
    """Paused → active. Like activation it needs a passing validation of these settings, so a
    connection changed while paused (which returns it to draft) is validated first."""
    if conn.status is not Status.PAUSED:
        raise ConflictError(
            f"connection {conn.name!r} is {conn.status}, not paused"
            + ("; validate it, then activate it" if conn.status is Status.DRAFT else "")
        )
    return activate(conn, validated_fingerprint=validated_fingerprint, now=now)


# What follows an action, as every door says it (keys: the pages' notices).
NEXT_STEPS = {
    "validated": "Validation passed: the connection can be activated.",
    "validated_active": "Validation passed: the connection is active and its transfers run "
    "on its schedule.",
    "validated_paused": "Validation passed: resume the connection for its transfers to run.",
    "validation_failed": "Validation failed: fix what the failed checks say, then validate again.",
    "resumed": "The connection is active again; transfers run on its schedule.",
    "resumed_held": "The connection is active again, but its transfers stay held until it "
    "passes validation again.",
}


def after_validation(conn: Connection, *, passed: bool) -> str:
    """The next step after a validation of ``conn`` (as it is after it): a `NEXT_STEPS` key.
    A pass clears a failing connection, so an active one transfers again at once."""
    if not passed:
        return "validation_failed"
    if conn.status is Status.ACTIVE:
        return "validated_active"
    if conn.status is Status.PAUSED:
        return "validated_paused"
    return "validated"


def after_resume(conn: Connection) -> str:
    """The next step after ``conn`` was resumed: a `NEXT_STEPS` key (a connection that was
    failing when paused stays held until it passes validation)."""
    return "resumed_held" if conn.is_failing else "resumed"


def pause(conn: Connection, *, now: datetime) -> Connection:
    if conn.status is not Status.ACTIVE:
        raise ConflictError(f"connection {conn.name!r} is {conn.status}, not active")
    return dataclasses.replace(conn, status=Status.PAUSED, updated_at=now)


EDITABLE_FIELDS = frozenset(
    {
        "name",
        "type",
        "account_id",
        "bucket",
        "region",
        "base_path",
        "path",
        "auth",
        "role_arn",
        "access_key_id",
        "secret_fingerprint",
        "workgroup",
        "schema",
        "database",
        "frequency_minutes",
        "models",
    }
)


def revise(conn: Connection, changes: dict[str, object], *, now: datetime) -> Connection:
    """Apply a recipient's or operator's changes, each checked by the same rules as creation.
    Any change to where or how the connection writes returns it to draft. The external ID and
    generated role name never change."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidFieldError(f"{name!r} cannot be changed", field=name)
    values: dict[str, object] = {}
    for key, value in changes.items():
        if value is None:
            continue
        values[key] = _checked(conn, key, value)
    if "type" in values and values["type"] is ConnectionType.LOCAL:
        raise InvalidFieldError("a connection cannot become local", field="type")
    if conn.is_import and values.get("type", conn.type) is not ConnectionType.S3:
        raise InvalidFieldError(
            "an import reads files from an S3 bucket: its type stays s3", field="type"
        )
    auth = values.get("auth", conn.auth)
    if "access_key_id" in values:
        auth = AuthKind.HMAC
        if "secret_fingerprint" not in values:
            raise InvalidFieldError(
                "a new access key ID needs its secret access key", field="secret_access_key"
            )
    elif "role_arn" in values:
        auth = AuthKind.ROLE
    account = str(values.get("account_id", conn.account_id))
    if auth is AuthKind.ROLE:
        if values.get("role_arn"):
            arn = str(values["role_arn"])
        elif "role_arn" in values:  # emptied: the role byob names, for the recipient to create
            arn = policies.role_arn(account, _generated_role(conn))
        elif conn.role_arn and conn.role_arn.split(":")[4] == account:
            arn = conn.role_arn
        else:
            arn = policies.role_arn(account, conn.role_name or _generated_role(conn))
        fields.role_arn(arn, expected_account_id=account)
        values |= {
            "role_arn": arn,
            "role_name": arn.rsplit("/", 1)[1],
            "access_key_id": "",
            "secret_fingerprint": "",
        }
    elif auth is AuthKind.HMAC:
        if not (values.get("access_key_id") or conn.access_key_id):
            raise InvalidFieldError("HMAC auth needs an access key ID", field="access_key_id")
        values |= {"role_arn": "", "role_name": ""}
    values["auth"] = auth
    kind = values.get("type", conn.type)
    if kind is ConnectionType.ATHENA:
        values["workgroup"], values["schema"], values["database"] = _athena_fields(
            workgroup=str(values.get("workgroup", conn.workgroup)),
            schema=str(values.get("schema", conn.schema)),
            database=str(values.get("database", conn.database)),
        )
    changed = dataclasses.replace(conn, updated_at=now, **values)  # type: ignore[arg-type]
    if changed.destination_fingerprint() != conn.destination_fingerprint():
        changed = dataclasses.replace(changed, status=Status.DRAFT)
    return changed


def _generated_role(conn: Connection) -> str:
    return policies.role_name(conn.name, conn.id[:6].lower())


def _checked(conn: Connection, key: str, value: object) -> object:
    text = str(value)
    if key == "name":
        return fields.connection_name(text)
    if key == "type":
        try:
            return ConnectionType(text)
        except ValueError:
            raise InvalidFieldError(
                f"connection type {text!r} is not s3 or athena", field="type"
            ) from None
    if key == "auth":
        try:
            return AuthKind(text)
        except ValueError:
            raise InvalidFieldError(f"auth {text!r} is not role or hmac", field="auth") from None
    checks = {
        "account_id": fields.account_id,
        "bucket": fields.bucket_name,
        "region": fields.region,
        "base_path": fields.base_path,
        "access_key_id": fields.access_key_id,
    }
    if key in checks:
        return checks[key](text)
    if key == "frequency_minutes":
        return schedules.frequency(value)
    if key == "models":
        if conn.is_import:
            raise InvalidFieldError(
                "an import connection loads its import; it receives no models", field="models"
            )
        return model_selection(value)  # type: ignore[arg-type]
    if key == "role_arn":
        return text.strip()  # checked against the account below
    return text


def disable(conn: Connection, *, now: datetime) -> Connection:
    return dataclasses.replace(conn, status=Status.DISABLED, updated_at=now)


def describe_changes(before: Connection, after: Connection) -> dict[str, list[object]]:
    """Field → [old, new] for the audit log; secrets only as '(changed)'."""
    out: dict[str, list[object]] = {}
    for f in dataclasses.fields(Connection):
        if f.name in ("updated_at",):
            continue
        old, new = getattr(before, f.name), getattr(after, f.name)
        if old != new:
            if f.name == "secret_fingerprint":
                out["secret_access_key"] = ["(set)" if old else "", "(changed)"]
            else:
                out[f.name] = [_plain(old), _plain(new)]
    return out


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value
