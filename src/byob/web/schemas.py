"""Request and response bodies, named by role. Unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from byob.domain.schedules import FREQUENCIES

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipientConnectionCreate(Strict):
    """What a recipient fills in through a link; the tenant comes from the link."""

    name: Annotated[str, Field(max_length=63)]
    type: Literal["s3", "athena"] = "s3"
    # import: byob reads the files the tenant drops under the base path into the vendor's
    # table declared as [[imports]] `import` in the models file (type s3 only).
    direction: Literal["export", "import"] = "export"
    import_: Annotated[str, Field(alias="import", max_length=128)] = ""
    # The models an export connection receives; left out: every model the vendor offers.
    models: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=256)] | None = (
        None
    )
    account_id: Annotated[str, Field(max_length=64)]
    bucket: Annotated[str, Field(max_length=255)]
    region: Annotated[str, Field(max_length=32)]
    base_path: Annotated[str | None, Field(max_length=1024)] = None
    role_arn: Annotated[str | None, Field(max_length=2048)] = None
    access_key_id: Annotated[str | None, Field(max_length=128)] = None
    secret_access_key: Annotated[str | None, Field(max_length=256)] = None
    workgroup: Annotated[str, Field(max_length=128)] = "primary"
    schema_: Annotated[str, Field(alias="schema", max_length=255)] = ""
    database: Annotated[str, Field(max_length=255)] = ""
    # Checked by the domain (one list of frequencies); the schema documents the same list.
    frequency_minutes: Annotated[int, Field(json_schema_extra={"enum": list(FREQUENCIES)})] = 1440


class ConnectionCreate(RecipientConnectionCreate):
    """What an operator fills in: the recipient's fields plus the tenant."""

    tenant: Annotated[str, Field(max_length=256)]


class ConnectionUpdate(Strict):
    name: Annotated[str | None, Field(max_length=63)] = None
    type: Literal["s3", "athena"] | None = None
    account_id: Annotated[str | None, Field(max_length=64)] = None
    bucket: Annotated[str | None, Field(max_length=255)] = None
    region: Annotated[str | None, Field(max_length=32)] = None
    base_path: Annotated[str | None, Field(max_length=1024)] = None
    auth: Literal["role", "hmac"] | None = None
    # A role of the recipient's own; "" goes back to the role byob names (to be created).
    role_arn: Annotated[str | None, Field(max_length=2048)] = None
    access_key_id: Annotated[str | None, Field(max_length=128)] = None
    secret_access_key: Annotated[str | None, Field(max_length=256)] = None
    workgroup: Annotated[str | None, Field(max_length=128)] = None
    schema_: Annotated[str | None, Field(alias="schema", max_length=255)] = None
    database: Annotated[str | None, Field(max_length=255)] = None
    # Checked by the domain (one list of frequencies); the schema documents the same list.
    frequency_minutes: Annotated[
        int | None, Field(json_schema_extra={"enum": list(FREQUENCIES)})
    ] = None
    # The models it receives (["*"]: back to every offered model); a model selected again
    # starts with a backfill.
    models: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=256)] | None = (
        None
    )


class CheckPublic(BaseModel):
    name: str
    outcome: Literal["passed", "failed", "warning", "skipped"]
    message: str
    aws_code: str | None
    duration_ms: int
    at: datetime
    fix: str | None = None  # what to fix, for a failed check byob has advice for


class ValidationPublic(BaseModel):
    passed: bool
    at: datetime
    current: bool  # ran against the connection's present settings
    checks: list[CheckPublic]


class FailingPublic(BaseModel):
    """Why a connection's transfers are held: set when a transfer met a permission or
    configuration error; a passing validation clears it."""

    since: datetime
    check: str
    message: str
    fix: str = ""  # what the recipient does about it


class ConnectionPublic(BaseModel):
    """A connection as any caller may see it: never a secret."""

    id: str
    name: str
    tenant: str
    type: str
    direction: Literal["export", "import"] = "export"
    import_: Annotated[str, Field(alias="import")] = ""  # the import an import connection loads
    models: list[str] | None = None  # the models selected; None: every offered model, later too
    # What the selection delivers now: the selected models the models file still offers
    # (None: an import, or the models file could not be read).
    receives: list[str] | None = None
    status: Literal["draft", "active", "paused", "disabled"]
    failing: FailingPublic | None = None
    location: str
    auth: str
    account_id: str = ""
    bucket: str = ""
    region: str = ""
    base_path: str = ""
    role_name: str = ""
    role_arn: str = ""
    external_id: str = ""
    access_key_id: str = ""
    workgroup: str = ""
    # "schema" both ways: a view's "schema" fills it (a serialization alias alone left every
    # Athena connection's schema empty in the API's answers).
    schema_: Annotated[str, Field(alias="schema")] = ""
    database: str = ""
    frequency_minutes: int
    next_run: datetime | None = None  # None while it may not transfer
    created_at: datetime
    updated_at: datetime
    validation: ValidationPublic | None = None
    last_transfer: TransferPublic | None = None


class ConnectionCreated(ConnectionPublic):
    warnings: list[str] = []  # e.g. a tenant with no rows in any model


class StatementChangePublic(BaseModel):
    sid: str
    removed: dict[str, list[str]]  # per element (Action, Resource, …), the values it lost
    added: dict[str, list[str]]


class PolicyChangedPublic(BaseModel):
    """The permissions policy an update changed: the recipient must paste it again."""

    message: str
    statements: list[StatementChangePublic]
    permissions_policy: dict[str, Any] | None


class ConnectionUpdated(ConnectionPublic):
    policy_changed: PolicyChangedPublic | None = None  # None: the policy is as it was


class CloudFormationPublic(BaseModel):
    template: dict[str, Any]
    # where the AWS console loads the template: a presigned URL in BYOB_TEMPLATE_BUCKET, else
    # byob's own address
    template_url: str
    stack_name: str
    # the console's quick-create link; None without BYOB_TEMPLATE_BUCKET and an https public URL
    launch_url: str | None = None
    note: str


class RoleSetupPublic(BaseModel):
    """The role as code, each creating exactly the role name and policies above."""

    cloudformation: CloudFormationPublic
    terraform: str
    aws_cli: str


class Policies(BaseModel):
    role_name: str | None = None
    # True: the role byob named, for the recipient to create (role_setup creates it); False:
    # a role the recipient gave, to be given the trust and permissions policies.
    generated_role: bool | None = None
    role_arn: str | None = None
    external_id: str | None = None
    trust_policy: dict[str, Any] | None = None
    permissions_policy: dict[str, Any]
    role_setup: RoleSetupPublic | None = None


class CursorPage(BaseModel, Generic[T]):
    """A keyset page: pass ``next`` as ``after`` (or ``previous`` as ``before``) for the
    neighbouring page; null at either end."""

    items: list[T]
    total: int
    next: str | None
    previous: str | None


class LinkCreate(Strict):
    tenant: Annotated[str, Field(min_length=1, max_length=256)]
    # Checked as every door checks it (`parse_lifetime`: 7d, 12h, 30m; 1 minute to 90 days).
    expires: Annotated[str, Field(max_length=16, examples=["7d"])] = "7d"
    # With read_only, the (non-draft) connection of the tenant whose deliveries the link shows.
    connection: Annotated[str | None, Field(min_length=1, max_length=63)] = None
    read_only: bool = False


class LinkPublic(BaseModel):
    id: str
    tenant: str
    state: Literal["open", "expired", "revoked", "spent"]
    created_at: datetime
    expires_at: datetime
    created_by: str
    connection_id: str | None
    read_only: bool


class LinkCreated(LinkPublic):
    token: str  # shown once
    url: str


class TransferTrigger(Strict):
    connection: Annotated[str, Field(max_length=63)]
    model: Annotated[str | None, Field(max_length=128)] = None
    full_refresh: bool = False


class WindowPublic(BaseModel):
    low: datetime | None
    high: datetime


class TransferPublic(BaseModel):
    id: str
    connection_id: str
    model: str
    type: Literal["incremental", "full_refresh", "import"]
    status: Literal["planned", "running", "succeeded", "failed", "cancelled"]
    started_at: datetime
    window: WindowPublic
    rows: int
    bytes: int
    files: int
    attempts: int
    error: str | None
    note: str | None = None  # what the figures do not say (rows left out, no rows yet)
    excluded_rows: int = 0  # rows with a NULL cursor left out (on_null_cursor = "exclude")
    # An import run's objects: seen, imported, rejected, skipped, already (None for exports).
    import_counts: dict[str, int] | None = None
    manifest: str | None
    finished_at: datetime | None
    # Asked to stop: a running transfer stops at its next batch, a failed one when next run.
    cancel_requested: bool = False
    cancellable: bool = False  # a cancel would change something (see POST …/cancel)


class RowProblemPublic(BaseModel):
    """Why a file was rejected: where (the physical line a record starts on, 1-based with the
    header counted; the row for Parquet; null for the whole file), the column and value (cut
    to 80 characters), the reason, and all of it as one sentence."""

    line: int | None
    column: str | None
    value: str | None
    reason: str
    message: str


class RejectedFilePublic(BaseModel):
    """A file (one version of an object: its key and ETag) an import refused. Later runs skip
    it until it is retried or replaced (a new ETag is a new file)."""

    key: str
    etag: str
    size: int
    rejected_at: datetime
    transfer_id: str | None  # the run that rejected it
    problems: list[RowProblemPublic]  # the first few
    message: str  # the first problem as a sentence


class RejectedFiles(BaseModel):
    """An import connection's rejected files, newest first (at most ``limit``), and how many
    there are in all."""

    items: list[RejectedFilePublic]
    total: int


class ImportRetry(Strict):
    key: Annotated[str, Field(min_length=1, max_length=1024)]  # the rejected file's full key


class ImportRetried(BaseModel):
    """The file is forgotten as rejected: the next run of the connection tries it again."""

    key: str
    cleared: int  # rejected versions (ETags) of the key forgotten


class TransfersTriggered(BaseModel):
    transfers: list[TransferPublic]  # windows already fixed (embedded workers)
    queued: list[str]  # models queued for distributed workers
    busy: list[str]  # models already running or waiting


class ColumnPublic(BaseModel):
    name: str
    source: str
    type: str
    glue_type: str


class ModelPublic(BaseModel):
    name: str
    table: str
    query: str = ""
    on_null_cursor: Literal["fail", "backfill_only", "exclude"] = "fail"
    tenant_column: str
    cursor_column: str
    primary_key: list[str]
    columns: list[ColumnPublic]
    null_cursor_rows: int = 0  # rows, of every tenant, whose cursor is NULL
    tenant_rows: int | None = None  # with ?tenant=: that tenant's rows
    problems: list[str] = []  # what will make the model's transfers fail
    warnings: list[str]


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ConnectionPublic.model_rebuild()
