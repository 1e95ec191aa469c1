"""What every web page shares: templates, sealed session cookies, CSRF, form bodies, and HTML
error pages (the JSON error handlers of the API are not for people)."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from byob.errors import ByobError, SecretError
from byob.services import Services
from byob.web.errors import status_of
from byob.web.pages_help import failing_headline

log = logging.getLogger("byob.web")

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
MAX_FORM_BYTES = 64 * 1024
OPERATOR_COOKIE = "byob_session"
LINK_COOKIE = "byob_link"
LINK_COOKIE_PATH = "/connect"
OPERATOR_SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Pages load nothing from elsewhere and run only byob's own script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a link token must never leak through a Referer
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """Stop and show an HTML page with this status, title and explanation."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class Redirect(Exception):
    """Stop and send the browser elsewhere (e.g. to the sign-in page)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


# -- templates ---------------------------------------------------------------------------------


def _when(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(value: int | None) -> str:
    amount = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"  # pragma: no cover - the loop returns


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2)


@cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates ship inside the package and never change under a running server:
        # no stat() of every template (and those it extends) on every render.
        auto_reload=False,
    )
    env.filters |= {"when": _when, "size": _size, "pretty_json": pretty_json, "sentence": sentence}
    env.globals["duration"] = duration
    env.globals["failing_headline"] = failing_headline
    return env


def render(
    template: str, *, status: int = 200, session: Session | None = None, **context: Any
) -> HTMLResponse:
    body = (
        templates()
        .get_template(template)
        .render(csrf_token=session.csrf if session else "", **context)
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def sentence(text: str) -> str:
    """byob's error messages are lower-case clauses (for CLI lines); pages show sentences."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def error_page(status: int, title: str, message: str) -> HTMLResponse:
    message = sentence(message)
    return render("error.html", status=status, title=title, message=message, code=status)


# -- sessions: sealed (AES-GCM) with the app's secret box, so they are private and unforgeable --


@dataclass(frozen=True, kw_only=True)
class Session:
    kind: str  # "operator" or "link"
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = 0.0
    key_id: str | None = None  # operator sessions: the API key signed in with
    actor: str = ""
    link_id: str | None = None  # link sessions: the link opened

    @property
    def signed_in(self) -> bool:
        return self.kind == "operator" and self.key_id is not None


def _context(kind: str) -> str:
    return f"byob-web-session:{kind}"


def read_session(request: Request, services: Services, kind: str) -> Session | None:
    name = OPERATOR_COOKIE if kind == "operator" else LINK_COOKIE
    sealed = request.cookies.get(name)
    if not sealed:
        return None
    try:
        data = json.loads(services.adapters.secrets.open(sealed, context=_context(kind)))
        session = Session(**data)
    except (SecretError, ValueError, TypeError):
        return None  # tampered, from another key, or from an older layout: start over
    if session.kind != kind or session.expires < time.time():
        return None
    return session


def operator_session(request: Request, services: Services) -> Session:
    """The operator's session, if its API key is still live; else off to the sign-in page."""
    session = read_session(request, services, "operator")
    if (
        session is None
        or not session.signed_in
        or session.key_id is None
        or not services.api_keys.is_live(session.key_id)
    ):
        raise Redirect(f"/login?next={quote(request.url.path)}")
    return session


def write_session(
    response: Response, request: Request, services: Services, session: Session
) -> None:
    payload = json.dumps(session.__dict__, separators=(",", ":"))
    sealed = services.adapters.secrets.seal(payload, context=_context(session.kind))
    response.set_cookie(
        OPERATOR_COOKIE if session.kind == "operator" else LINK_COOKIE,
        sealed,
        max_age=max(int(session.expires - time.time()), 1),
        path="/" if session.kind == "operator" else LINK_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https"
        or services.adapters.settings.public_url.startswith("https://"),
    )


def clear_session(response: Response, kind: str) -> None:
    response.delete_cookie(
        OPERATOR_COOKIE if kind == "operator" else LINK_COOKIE,
        path="/" if kind == "operator" else LINK_COOKIE_PATH,
        httponly=True,
        samesite="strict",
    )


# -- forms and CSRF ------------------------------------------------------------------------------


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body (the only kind byob's forms send)."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise PageError(413, "Form too large", "That form was larger than byob accepts.")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise PageError(400, "Unreadable form", "The form was not valid UTF-8.") from None
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise PageError(400, "Unreadable form", "The form contains a NUL character.")
    return pairs


async def form_body(request: Request) -> dict[str, str]:
    """The form's fields, each its first value."""
    out: dict[str, str] = {}
    for key, value in await _form_pairs(request):
        out.setdefault(key, value)
    return out


async def form_lists(request: Request) -> dict[str, list[str]]:
    """The form's fields, each with every value it was sent (checkboxes of one name)."""
    out: dict[str, list[str]] = {}
    for key, value in await _form_pairs(request):
        out.setdefault(key, []).append(value)
    return out


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise PageError(403, "Request refused", "This form was sent from another site.")


def check_csrf(request: Request, session: Session | None, submitted: str | None) -> None:
    """Every POST carries the session's token; a request forged elsewhere cannot know it."""
    check_origin(request)
    if session is None or not submitted or not hmac.compare_digest(session.csrf, submitted):
        raise PageError(
            403,
            "Request refused",
            "This form is out of date or did not come from this site. Reload the page and "
            "try again.",
        )


def safe_next(target: str | None, default: str) -> str:
    """Only local paths: a sign-in form must not bounce people to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


# -- the route class: HTML errors, never a stack trace -------------------------------------------


class PageRoute(APIRoute):
    """Turns errors raised by pages (and their dependencies) into HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            target = f"{request.url.path}?{request.url.query}"
            if "\x00" in target or "%00" in target:
                # No page takes a NUL, and PostgreSQL text refuses it: say so, not 500.
                return error_page(400, "Bad request", "The address contains a NUL character.")
            try:
                return await handler(request)
            except Redirect as exc:
                return redirect(exc.url)
            except PageError as exc:
                return error_page(exc.status, exc.title, exc.message)
            except ByobError as exc:
                status = status_of(exc)
                return error_page(status, _TITLES.get(status, "Something went wrong"), exc.message)
            except RequestValidationError:
                return error_page(400, "Bad request", "The request was not understood.")
            except StarletteHTTPException as exc:
                return error_page(exc.status_code, "Request refused", str(exc.detail))
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_page(
                    500,
                    "Something went wrong",
                    "An unexpected error occurred; the operator "
                    "can find the details in the server log.",
                )

        return page_handler


_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    410: "This link can no longer be used",
    422: "Invalid value",
    502: "An outside service failed",
}
