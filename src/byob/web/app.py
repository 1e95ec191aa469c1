"""The FastAPI application: built from the use cases at the entry point, never at import time."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from byob.domain import fields as field_rules
from byob.errors import ByobError
from byob.services import Services
from byob.web.docs import documented_app
from byob.web.errors import error_response, status_of
from byob.web.limits import BoundedBody
from byob.web.metrics import ByobCollector
from byob.web.throttle import Throttle

log = logging.getLogger("byob.api")


def _left_out(error: Any) -> bool:
    """A required key left out of the request, or sent empty where a minimum length applies."""
    kind = error.get("type")
    return bool(kind == "missing" or (kind == "string_too_short" and error.get("input") == ""))


def create_app(services: Services) -> FastAPI:
    from byob.web import routes_connections, routes_links, routes_transfers

    app = documented_app(
        title="byob",
        version="1",
        openapi_url="/openapi.json",
        description="Deliver each tenant's rows into storage the tenant owns.",
    )
    app.state.services = services

    # Bodies are bounded before authentication or anything else reads them; outermost, a
    # request over its client's budget is turned away before its body is read at all.
    app.add_middleware(BoundedBody, max_bytes=services.adapters.settings.max_body_bytes)
    app.add_middleware(Throttle, guard=services.guard)

    @app.exception_handler(ByobError)
    async def _byob_error(_: Request, exc: ByobError) -> JSONResponse:
        return error_response(status_of(exc), exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(422, "invalid_json", "the request body is not valid JSON")
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        if _left_out(first):
            # The domain's wording, as for a field sent empty: "region is required: the AWS
            # region of the bucket, e.g. eu-west-1" rather than pydantic's "Field required".
            if field is None:
                return error_response(422, "invalid_field", "a JSON request body is required")
            missing = field_rules.missing(field)
            return error_response(422, missing.code, missing.message, missing.field)
        message = first.get("msg", "invalid request")
        if first.get("type") == "extra_forbidden":
            message = f"unknown field {field!r}"
        return error_response(
            422, "invalid_field", f"{field}: {message}" if field else message, field
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(
            500, "internal_error", "an unexpected error occurred; see the server log"
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (on the event loop: no thread to wait for)."""
        return {"status": "ok"}

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        """Readiness: "ok", or "degraded" with what does not work and why."""
        return services.health.report()

    registry = CollectorRegistry()
    registry.register(ByobCollector(services.figures.now))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/.well-known/byob-keys.json", include_in_schema=False)
    def signing_keys() -> dict[str, Any]:
        """The public keys manifests are signed with (JWKS): current and previous. Public."""
        return services.manifests.keyring().jwks()

    app.include_router(routes_connections.router, prefix="/api/v1")
    app.include_router(routes_links.router, prefix="/api/v1")
    app.include_router(routes_links.recipient, prefix="/api/v1")
    app.include_router(routes_transfers.router, prefix="/api/v1")
    from starlette.staticfiles import StaticFiles

    from byob.web import pages  # the web pages: operator's and the recipient's wizard

    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app
