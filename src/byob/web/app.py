"""The FastAPI application: built from the use cases at the entry point, never at import time."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from byob.domain.credentials import LINK_PREFIX
from byob.errors import (
    AuthenticationError,
    ByobError,
    ConflictError,
    GoneError,
    InvalidFieldError,
    NotFoundError,
    PermissionDeniedError,
    SchemaChangeError,
)
from byob.services import Services
from byob.services.principals import Principal
from byob.web.metrics import ByobCollector

log = logging.getLogger("byob.api")

_STATUS = {
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    GoneError: 410,
    InvalidFieldError: 422,
    SchemaChangeError: 409,
}


def status_of(exc: ByobError) -> int:
    for kind, status in _STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400 if exc.field else 502  # a failure met downstream (AWS, the source)


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def create_app(services: Services) -> FastAPI:
    from byob.web import routes_connections, routes_links, routes_transfers

    app = FastAPI(
        title="byob",
        version="1",
        docs_url="/docs",
        openapi_url="/openapi.json",
        description="Deliver each tenant's rows into storage the tenant owns.",
    )
    app.state.services = services

    @app.middleware("http")
    async def _refuse_nul(request: Request, call_next: Any) -> Any:
        # No stored text may hold NUL (PostgreSQL refuses it); say so instead of failing later.
        body = await request.body()
        raw = request.url.path + "?" + str(request.url.query)
        if "\x00" in raw or "%00" in raw.lower() or b"\\u0000" in body or b"\x00" in body:
            return error_response(422, "invalid_field", "text must not contain NUL characters")
        return await call_next(request)

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
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    registry = CollectorRegistry()
    registry.register(ByobCollector(services.figures.now))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes_connections.router, prefix="/api/v1")
    app.include_router(routes_links.router, prefix="/api/v1")
    app.include_router(routes_links.recipient, prefix="/api/v1")
    app.include_router(routes_transfers.router, prefix="/api/v1")
    from starlette.staticfiles import StaticFiles

    from byob.web import pages  # the web pages: operator's and the recipient's wizard

    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send `Authorization: Bearer <API key or link token>`")
    return token.strip()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def principal(request: Request) -> Principal:
    token = _bearer(request)
    services = get_services(request)
    if token.startswith(LINK_PREFIX):
        return services.links.principal(token)
    return services.api_keys.operator(token)


def operator(request: Request) -> Principal:
    who = principal(request)
    if not who.is_operator:
        raise PermissionDeniedError("a connection link cannot use operator endpoints")
    return who


def recipient(request: Request) -> Principal:
    who = principal(request)
    if who.link is None:
        raise PermissionDeniedError("recipient endpoints take a connection link token")
    return who


ServicesDep = Annotated[Services, Depends(get_services)]
Operator = Annotated[Principal, Depends(operator)]
Recipient = Annotated[Principal, Depends(recipient)]
