"""What every front door shows of byob's records, built once: the CLI (table and --json), the
REST API, the web pages and webhooks all render these. Never a secret: the sealed HMAC secret
is not even read here."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from byob.domain.connections import AuthKind, Connection, ConnectionType, Validation
from byob.domain.fixes import check_fix, recipient_fix
from byob.domain.transfers import TransferRecord, cancellable
from byob.services.models import CheckedModel

if TYPE_CHECKING:
    from byob.domain.credentials import Link  # a type only: not loaded at start-up


def connection_view(
    conn: Connection,
    *,
    validation: Validation | None,
    last_transfer: TransferRecord | None,
    now: datetime,
    offered: list[str] | None = None,
) -> dict[str, Any]:
    """A connection as any caller may see it: where it writes, its lifecycle and health, its
    latest validation, its latest transfer and its next scheduled run. ``offered``: the
    models the models file offers now (None when it cannot be read)."""
    remote = conn.type is not ConnectionType.LOCAL
    role = conn.auth is AuthKind.ROLE
    athena = conn.type is ConnectionType.ATHENA
    # Every key always there (empty where it does not apply), so that each front door, and
    # the API's documented schema, shows one shape whatever the connection's type and auth.
    data: dict[str, Any] = {
        "id": conn.id,
        "name": conn.name,
        "tenant": conn.tenant,
        # str() of these StrEnum members is their value, without Enum.value's descriptor: a
        # list page reads six of them a row.
        "type": str(conn.type),
        "direction": str(conn.direction),
        "import": conn.import_name,
        # The models selected; None: every model the models file offers, later ones too.
        "models": list(conn.models) if conn.models is not None else None,
        # What that selection delivers now: the selected models still offered, in the models
        # file's order (None: an import, or the models file could not be read).
        "receives": conn.receives(offered) if offered is not None and not conn.is_import else None,
        "status": str(conn.status),
        "failing": failing_view(conn),
        "location": conn.location(),
        "auth": str(conn.auth),
        "account_id": conn.account_id if remote else "",
        "bucket": conn.bucket if remote else "",
        "region": conn.region if remote else "",
        "base_path": conn.base_path if remote else "",
        "role_name": conn.role_name if role else "",
        "role_arn": conn.role_arn if role else "",
        "external_id": conn.external_id if role else "",
        "access_key_id": conn.access_key_id if conn.auth is AuthKind.HMAC else "",
        "workgroup": conn.workgroup if athena else "",
        "schema": conn.schema if athena else "",
        "database": conn.database if athena else "",
        "frequency_minutes": conn.frequency_minutes,
        "next_run": conn.next_run(now),
        "created_at": conn.created_at,
        "updated_at": conn.updated_at,
    }
    data["validation"] = validation_view(validation, conn) if validation else None
    data["last_transfer"] = transfer_view(last_transfer) if last_transfer else None
    return data


def failing_view(conn: Connection) -> dict[str, Any] | None:
    if not conn.is_failing:
        return None
    return {
        "since": conn.failing_since,
        "check": conn.failing_check,
        "message": conn.failing_message,
        "fix": recipient_fix(conn.failing_check),  # what the recipient does about it
    }


def validation_view(
    validation: Validation, conn: Connection, *, operator_notes: bool = False
) -> dict[str, Any]:
    """A validation and its checks; ``operator_notes`` only for the operator's pages."""
    return {
        "passed": validation.passed,
        "at": validation.created_at,
        "checks": [check_view(check, operator_notes=operator_notes) for check in validation.checks],
        "current": validation.covers(conn),
    }


def check_view(check: dict[str, Any], *, operator_notes: bool = False) -> dict[str, Any]:
    """A stored check (its time kept as ISO text) with its time as a datetime, like every
    other time byob shows. Its operator note (about byob's own configuration, e.g. its AWS
    endpoint) is left out unless asked for: views reach recipients, the API and webhooks,
    and only the operator's pages show the note."""
    at = check.get("at")
    out = check | {"at": datetime.fromisoformat(at)} if isinstance(at, str) else dict(check)
    out["fix"] = check_fix(str(check.get("name")), str(check.get("outcome")))
    if not operator_notes:
        out.pop("operator_note", None)
    return out


def transfer_view(record: TransferRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "connection_id": record.connection_id,
        "model": record.model,
        "type": str(record.type),
        "status": str(record.status),
        "started_at": record.started_at,
        "window": {"low": record.window.low, "high": record.window.high},
        "rows": record.rows,
        "bytes": record.bytes,
        "files": record.files,
        "attempts": record.attempts,
        "error": record.error,
        "note": record.note,
        "excluded_rows": record.excluded_rows,
        "import_counts": record.import_counts,
        "manifest": record.manifest_key,
        "finished_at": record.finished_at,
        "cancel_requested": record.cancel_requested,
        "cancellable": cancellable(record),
    }


def model_view(checked: CheckedModel) -> dict[str, Any]:
    """A model as checked against the source: its columns, their types and Athena types, rows
    whose cursor is NULL, and what will make its transfers fail."""
    model = checked.model
    return {
        "name": model.name,
        "table": model.spec.table,
        "query": model.spec.query,
        "on_null_cursor": model.spec.on_null_cursor.value,
        "tenant_column": model.spec.tenant_column,
        "cursor_column": model.spec.cursor_column,
        "primary_key": list(model.spec.primary_key),
        "columns": [
            {
                "name": c.name,
                "source": c.source_name,
                "type": str(c.type),
                "glue_type": c.type.glue_type(),
            }
            for c in model.columns
        ],
        "null_cursor_rows": checked.null_cursor_rows,
        "tenant_rows": checked.tenant_rows,
        "problems": list(checked.problems),
        "warnings": list(checked.warnings),
    }


def link_view(link: Link, now: datetime) -> dict[str, Any]:
    return {
        "id": link.id,
        "tenant": link.tenant,
        "state": link.state(now).value,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "created_by": link.created_by,
        "connection_id": link.connection_id,
        "read_only": link.read_only,
    }
