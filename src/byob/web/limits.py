"""Bounded requests: a body is read up to a cap (BYOB_MAX_BODY_BYTES) before anything else —
authentication included — looks at it, so no client can make byob hold more than the cap per
request. A declared size over the cap is refused before a byte is read; a streamed one as soon
as it passes it. Text that PostgreSQL cannot store (NUL) is refused here too."""

from __future__ import annotations

import html
import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class BoundedBody:
    """ASGI middleware: the whole body, at most ``max_bytes``, is read and checked, then handed
    to the app as one message."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = scope.get("path", "") + "?" + scope.get("query_string", b"").decode("latin-1")
        if "\x00" in target or "%00" in target.lower():
            await refuse(scope, send, 422, "invalid_field", "text must not contain NUL characters")
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await refuse(scope, send, 413, "body_too_large", self._too_large())
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await refuse(scope, send, 413, "body_too_large", self._too_large())
                return
            if not message.get("more_body", False):
                break
        if b"\x00" in body or b"\\u0000" in body:
            await refuse(scope, send, 422, "invalid_field", "text must not contain NUL characters")
            return
        handed = False

        async def replay() -> Message:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            after: Message = await receive()  # after the body: only a disconnect can come
            return after

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the request body is larger than byob accepts ({self.max_bytes:,} bytes)"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def refuse(
    scope: Scope,
    send: Any,
    status: int,
    code: str,
    message: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """The API's JSON error body; a short page for people elsewhere. The connection closes:
    whatever the client still sends is not read."""
    if scope.get("path", "").startswith("/api/"):
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        kind = b"application/json"
    else:
        text = html.escape(f"{message[0].upper()}{message[1:]}.")
        body = f"<!doctype html><title>{status}</title><p>{text}</p>".encode()
        kind = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
