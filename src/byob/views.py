"""What interfaces show of byob's records: one presenter for the CLI and the API. Never a
secret: the sealed HMAC secret is not even read here."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from byob.domain.access import Link
from byob.domain.connections import Connection
from byob.store.repositories import TransferRecord

if TYPE_CHECKING:
    from byob.app import Byob


def connection_view(conn: Connection, byob: Byob | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": conn.id,
        "name": conn.name,
        "tenant": conn.tenant,
        "type": conn.type.value,
        "status": conn.status.value,
        "location": conn.location(),
        "auth": conn.auth.value,
        "frequency_minutes": conn.frequency_minutes,
        "created_at": conn.created_at,
        "updated_at": conn.updated_at,
    }
    if conn.type.value != "local":
        data |= {
            "account_id": conn.account_id,
            "bucket": conn.bucket,
            "region": conn.region,
            "base_path": conn.base_path,
        }
    if conn.auth.value == "role":
        data |= {
            "role_name": conn.role_name,
            "role_arn": conn.role_arn,
            "external_id": conn.external_id,
        }
    if conn.auth.value == "hmac":
        data["access_key_id"] = conn.access_key_id
    if conn.type.value == "athena":
        data |= {"workgroup": conn.workgroup, "schema": conn.schema, "database": conn.database}
    if byob is not None:
        latest = byob.validations.latest(conn.id)
        data["validation"] = (
            {
                "passed": latest.passed,
                "at": latest.created_at,
                "checks": latest.checks,
                "current": latest.fingerprint == conn.destination_fingerprint(),
            }
            if latest
            else None
        )
    return data


def link_view(link: Link, now: datetime) -> dict[str, Any]:
    return {
        "id": link.id,
        "tenant": link.tenant,
        "state": link.state(now).value,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "created_by": link.created_by,
        "connection_id": link.connection_id,
    }


def transfer_view(record: TransferRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "connection_id": record.connection_id,
        "model": record.model,
        "type": record.type.value,
        "status": record.status,
        "started_at": record.started_at,
        "window": {"low": record.window.low, "high": record.window.high},
        "rows": record.rows,
        "bytes": record.bytes,
        "files": record.files,
        "attempts": record.attempts,
        "error": record.error,
        "manifest": record.manifest_key,
        "finished_at": record.finished_at,
    }
