"""The state store's tables (SQLAlchemy Core). Alembic migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        # PostgreSQL sessions run in UTC (db.create_engine), so psycopg already returns aware
        # UTC datetimes: a list page would otherwise pass hundreds of values through this.
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)


connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False),  # unique per tenant (below)
    sa.Column("tenant", sa.String(256), nullable=False, index=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False, default=""),
    sa.Column("bucket", sa.String(63), nullable=False, default=""),
    sa.Column("region", sa.String(32), nullable=False, default=""),
    sa.Column("base_path", sa.String(512), nullable=False, default=""),
    sa.Column("path", sa.Text, nullable=False, default=""),
    sa.Column("auth", sa.String(8), nullable=False),
    sa.Column("role_name", sa.String(64), nullable=False, default=""),
    sa.Column("role_arn", sa.String(2048), nullable=False, default=""),
    sa.Column("external_id", sa.String(64), nullable=False, default=""),
    sa.Column("access_key_id", sa.String(128), nullable=False, default=""),
    sa.Column("secret_sealed", sa.Text, nullable=True),  # AES-GCM; never the plain secret
    sa.Column("secret_fingerprint", sa.String(64), nullable=False, default=""),
    sa.Column("workgroup", sa.String(128), nullable=False, default="primary"),
    sa.Column("schema_name", sa.String(255), nullable=False, default=""),
    sa.Column("database_name", sa.String(255), nullable=False, default=""),
    sa.Column("frequency_minutes", sa.Integer, nullable=False, default=1440),
    # export: byob writes the tenant's rows; import: byob reads the tenant's files (seed 001).
    sa.Column("direction", sa.String(8), nullable=False, server_default="export"),
    sa.Column("import_name", sa.String(128), nullable=False, server_default=""),
    # The models an export connection receives (a JSON list); NULL: every offered model.
    sa.Column("models", sa.JSON, nullable=True),
    # Once activated, a recipient may withdraw s3:DeleteObject (the seeds allow it).
    sa.Column("first_activated_at", UTCDateTime, nullable=True),
    # The last schedule slot dispatched; claimed with compare-and-set so one scheduler wins.
    sa.Column("last_slot", UTCDateTime, nullable=True),
    # Set when a transfer meets a permission or configuration error; cleared by a passing
    # validation. Transfers do not run while it is set.
    sa.Column("failing_check", sa.String(64), nullable=True),
    sa.Column("failing_message", sa.Text, nullable=True),
    sa.Column("failing_since", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="uq_connections_tenant_name"),
    # The list's keyset order, for all tenants and for one.
    sa.Index("ix_connections_created", "created_at", "id"),
    sa.Index("ix_connections_tenant_created", "tenant", "created_at", "id"),
)

validations = sa.Table(
    "validations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "connection_id",
        sa.ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

model_states = sa.Table(
    "model_states",
    metadata,
    sa.Column(
        "connection_id", sa.ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("high_water_mark", UTCDateTime, nullable=True),
    sa.Column("last_transfer_id", sa.String(32), nullable=True),
    sa.Column("columns", sa.JSON, nullable=True),  # the schema delivered so far
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("connection_id", sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),  # names the partition and files
    sa.Column("window_low", UTCDateTime, nullable=True),
    sa.Column("window_high", UTCDateTime, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("files", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("manifest_key", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column(
        "cancel_requested", sa.Boolean, nullable=False, default=False, server_default=sa.false()
    ),
    # What the figures do not say: rows left out (NULL cursors), a tenant with no rows.
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("excluded_rows", sa.BigInteger, nullable=False, default=0, server_default="0"),
    # An import run's objects: seen, imported, rejected, skipped (changed or rejected before),
    # already (another run loaded them meanwhile). NULL for exports.
    sa.Column("import_counts", sa.JSON, nullable=True),
    sa.Index("ix_transfers_connection_model", "connection_id", "model", "created_at"),
    sa.Index("ix_transfers_connection_created", "connection_id", "created_at"),  # the latest
    # The list across connections, newest first: all of them, and by status.
    sa.Index("ix_transfers_created", "created_at", "id"),
    sa.Index("ix_transfers_status_created", "status", "created_at", "id"),
)

transfer_files = sa.Table(
    "transfer_files",
    metadata,
    sa.Column("transfer_id", sa.ForeignKey("transfers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("file_part", sa.Integer, primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    # started: may exist at the destination; committed: durable and counted; void: replaced
    # by an empty file or deleted because a retry needed fewer files.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("upload_id", sa.Text, nullable=True),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
)

import_rejections = sa.Table(
    "import_rejections",
    metadata,
    # An object version an import refused (bad rows, too big): skipped by later runs until
    # `byob imports retry` clears it. The rows themselves never reached the target table.
    sa.Column(
        "connection_id", sa.ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("object_key", sa.Text, primary_key=True),
    sa.Column("etag", sa.String(256), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("problems", sa.JSON, nullable=False),  # the first few: line, column, value, reason
    sa.Column("transfer_id", sa.String(32), nullable=True),
    sa.Column("rejected_at", UTCDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # never the key
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(256), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # never the token
    sa.Column("created_by", sa.String(160), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("spent_at", UTCDateTime, nullable=True),
    sa.Column("connection_id", sa.ForeignKey("connections.id", ondelete="SET NULL"), nullable=True),
    sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(160), nullable=False),  # "operator:<key name>", "link:<id>", "cli"
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("connection_id", sa.String(32), nullable=True, index=True),
    sa.Column("changes", sa.JSON, nullable=False),  # field → [old, new]; secrets as "(changed)"
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # X-Byob-Event-Id
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime, nullable=True),  # a deliverer holds it till then
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Index("ix_webhook_events_due", "status", "next_attempt_at"),
)

# Schedule slots a scheduler claimed (one row per claiming statement), deleted once it has
# dispatched them: a row left over names slots whose scheduler stopped in between, which
# another dispatches a few minutes on (services/schedules.py). Usually empty.
slot_claims = sa.Table(
    "slot_claims",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("connection_ids", sa.JSON, nullable=False),
)
