"""The manifest: written last, it is the commit marker a consumer can wait for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from byob.domain.windows import TransferType, Window

MANIFEST_VERSION = 1


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
    columns: list[dict[str, str]],
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
