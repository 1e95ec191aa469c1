"""How the API reports byob's errors: the status each error kind maps to, and the one JSON
body every error answer has."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

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
