"""The API's documentation pages, Swagger UI at /docs and ReDoc at /redoc, with their scripts
and styles served by byob itself. FastAPI's own pages load them from a CDN, so on a host
without internet they stayed blank. The assets come from the fastapi-offline package, which
ships Swagger UI's and ReDoc's builds (never copied into byob by hand)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/static-offline-docs"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js


def documented_app(**options: Any) -> FastAPI:
    """A FastAPI app whose documentation pages need nothing from outside byob."""
    app: FastAPI = FastAPIOffline(
        docs_url=DOCS_URL, redoc_url=REDOC_URL, static_url=ASSETS_URL, **options
    )
    return app
