"""The manifest: written last, it is the commit marker a consumer can wait for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from byob.domain.models import ResolvedModel
from byob.domain.windows import TransferType, Window

MANIFEST_VERSION = 1
SCHEMA_VERSION = 1
HASH_ALGORITHM = "HMAC-SHA256"  # keyed with the installation's salt, lowercase hex


def manifest(
    *,
    transfer_id: str,
    connection: str,
    tenant: str,
    model: str,
    kind: TransferType,
    window: Window,
    started_at: datetime,
    files: list[dict[str, Any]],
    columns: list[dict[str, Any]],
    location: str,
    note: str | None = None,
    excluded_rows: int = 0,
) -> dict[str, Any]:
    """Lists every data file with its row count, byte size and SHA-256, and the window. A full
    refresh's files hold the whole of the model as of the window's end: a reader takes the
    newest full refresh and the increments after it."""
    return {
        "version": MANIFEST_VERSION,
        "transfer_id": transfer_id,
        "connection": connection,
        "tenant": tenant,
        "model": model,
        "transfer_type": kind.value,
        # A full refresh's files are the whole model as of the window's end (a snapshot).
        "kind": kind.value,
        "started_at": started_at.isoformat(),
        "window": {
            "cursor_after": window.low.isoformat() if window.low else None,
            "cursor_up_to": window.high.isoformat(),
        },
        "location": location,
        "files": files,
        "rows": sum(int(f["rows"]) for f in files),
        "bytes": sum(int(f["bytes"]) for f in files),
        "columns": columns,
        # Rows with a NULL cursor left out of this transfer (on_null_cursor = "exclude").
        "excluded_rows": excluded_rows,
        "note": note,
    }


def delivered_columns(model: ResolvedModel) -> list[dict[str, Any]]:
    """The columns of the model's files, as manifests, schema.json and the state store list
    them (the state store's copy is what schema evolution is checked against)."""
    out: list[dict[str, Any]] = []
    for c in model.delivered_columns:
        column: dict[str, Any] = {
            "name": c.name,
            "source": c.source_name,
            "type": str(c.type),
            "glue_type": c.type.glue_type(),
        }
        if c.hashed:
            column["hashed"] = True
        if c.description:
            column["description"] = c.description
        out.append(column)
    return out


def schema_document(model: ResolvedModel) -> dict[str, Any]:
    """schema.json: what a recipient needs to read the model's files without the catalog."""
    spec = model.spec
    return {
        "version": SCHEMA_VERSION,
        "model": model.name,
        "description": spec.description or None,
        "primary_key": [model.column(k).name for k in spec.primary_key],
        "cursor": model.cursor.name,
        "columns": [
            {
                **column,
                "hashed": column.get("hashed", False),
                "description": column.get("description"),
            }
            for column in delivered_columns(model)
        ],
        # Hashed columns hold HMAC-SHA256 (keyed with the vendor's salt) of the source's text
        # form of the value, in lowercase hex: equal values have equal hashes.
        "hash": {"algorithm": HASH_ALGORITHM, "encoding": "hex"} if model.hashed_columns else None,
    }
