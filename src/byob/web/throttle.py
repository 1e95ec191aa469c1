"""Rate limits at the door: each request is admitted by the guard (per client address and per
credential) before the app sees it, and a refused sign-in is counted once the app has answered.
A sign-in is an API request with a bearer token, a POST to /login, or a connection link opened."""

from __future__ import annotations

from typing import Any

from anyio import to_thread

from byob.domain.credentials import LINK_PREFIX
from byob.services.guard import GuardService, Refusal
from byob.web.limits import refuse

Scope = dict[str, Any]

UNLIMITED = ("/healthz", "/health", "/metrics", "/static/")
LINK_LANDING = "/connect/" + LINK_PREFIX


class Throttle:
    """ASGI middleware: 429 with Retry-After for a request over budget; after the app answers,
    a 401 (or an unknown link: 404) to a sign-in is a failed sign-in."""

    def __init__(self, app: Any, *, guard: GuardService) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNLIMITED):
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        credential = _credential(scope, path)
        signing_in = credential is not None or (scope["method"] == "POST" and path == "/login")
        refusal = self.guard.admit(address, credential, signing_in=signing_in)
        if refusal is not None:
            await _too_many(scope, send, refusal)
            return
        locks_out = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal locks_out
            if message["type"] == "http.response.start" and signing_in:
                status = message["status"]
                if status == 401 or (status == 404 and path.startswith(LINK_LANDING)):
                    locks_out = self.guard.failed_sign_in(address)
            await send(message)

        await self.app(scope, receive, watch)
        if locks_out:
            await to_thread.run_sync(lambda: self.guard.lockout(address, where=path))


def _credential(scope: Scope, path: str) -> str | None:
    """The bearer token, or the link token of a link being opened."""
    if path.startswith(LINK_LANDING):
        return path.removeprefix("/connect/")
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


async def _too_many(scope: Scope, send: Any, refusal: Refusal) -> None:
    code = "locked_out" if refusal.lockout else "rate_limited"
    message = f"{refusal.reason} (retry after {refusal.retry_after} s)"
    retry_after = ((b"retry-after", str(refusal.retry_after).encode()),)
    await refuse(scope, send, 429, code, message, retry_after)
