"""The operator's web pages: sign-in, Manage Connections, a connection with its validation
history, transfer history, and connection links. The recipient's wizard is in pages_connect.

`router` carries both; `create_app` includes it (and mounts STATIC_DIR at /static)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response

from byob.access import Access
from byob.app import Byob
from byob.domain.access import API_KEY_PREFIX, parse_lifetime
from byob.domain.connections import Connection
from byob.errors import ByobError, ConflictError
from byob.views import link_view
from byob.web import pages_connect
from byob.web.pages_base import (
    CSRF_FIELD,
    OPERATOR_SESSION_SECONDS,
    STATIC_DIR,
    PageRoute,
    Redirect,
    Session,
    check_csrf,
    clear_session,
    form_body,
    read_session,
    redirect,
    render,
    safe_next,
    write_session,
)
from byob.web.pages_help import CHECK_LABELS, next_run

__all__ = ["STATIC_DIR", "next_run", "router"]

operator = APIRouter(route_class=PageRoute, include_in_schema=False)
router = APIRouter(include_in_schema=False)

NOTICES = {
    "validated": "Validation passed: the connection can be activated.",
    "validation_failed": "Validation failed: see the checks below for what to fix.",
    "activated": "The connection is active; transfers run on its schedule.",
    "paused": "The connection is paused; no transfers run until it is resumed.",
    "run": "Transfers started; they appear in the history below as they run.",
    "revoked": "The link was revoked; it can no longer be opened.",
}
LINK_LIFETIMES = (("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"))


# -- dependencies --------------------------------------------------------------------------------


def get_byob(request: Request) -> Byob:
    return request.app.state.byob


def get_access(request: Request) -> Access:
    return request.app.state.access


ByobDep = Annotated[Byob, Depends(get_byob)]
AccessDep = Annotated[Access, Depends(get_access)]
Form = Annotated[dict[str, str], Depends(form_body)]


def signed_in(request: Request, byob: ByobDep, access: AccessDep) -> Session:
    """The operator's session, if its API key is still live; else off to the sign-in page."""
    session = read_session(request, byob, "operator")
    if (
        session is None
        or not session.signed_in
        or not any(k.id == session.key_id and k.revoked_at is None for k in access.keys.list())
    ):
        raise Redirect(f"/login?next={quote(request.url.path)}")
    return session


Operator = Annotated[Session, Depends(signed_in)]


def posted(request: Request, session: Operator, form: Form) -> Session:
    check_csrf(request, session, form.get(CSRF_FIELD))
    return session


PostedBy = Annotated[Session, Depends(posted)]


# -- sign-in -------------------------------------------------------------------------------------


def _login_page(
    request: Request,
    byob: Byob,
    *,
    error: str = "",
    next_url: str = "/connections",
    status: int = 200,
) -> Response:
    session = read_session(request, byob, "operator")
    if session is None or session.signed_in:
        session = Session(kind="operator", expires=time.time() + 3600)
    response = render("login.html", status=status, session=session, error=error, next_url=next_url)
    write_session(response, request, byob, session)
    return response


@operator.get("/login")
def login_form(request: Request, byob: ByobDep, next: str = "/connections") -> Response:
    return _login_page(request, byob, next_url=safe_next(next, "/connections"))


@operator.post("/login")
def login(request: Request, byob: ByobDep, access: AccessDep, form: Form) -> Response:
    check_csrf(request, read_session(request, byob, "operator"), form.get(CSRF_FIELD))
    token = form.get("api_key", "").strip()
    key = access.keys.find(token) if token.startswith(API_KEY_PREFIX) else None
    next_url = safe_next(form.get("next"), "/connections")
    if key is None:
        return _login_page(
            request,
            byob,
            status=401,
            next_url=next_url,
            error="That API key is not valid: it is unknown or was revoked. Create one with "
            "`byob api-keys create --name NAME`.",
        )
    session = Session(
        kind="operator",
        key_id=key.id,
        actor=f"operator:{key.name}",
        expires=time.time() + OPERATOR_SESSION_SECONDS,
    )
    response = redirect(next_url)
    write_session(response, request, byob, session)  # a fresh CSRF token: no session fixation
    return response


@operator.post("/logout")
def logout(session: PostedBy) -> Response:
    response = redirect("/login")
    clear_session(response, "operator")
    return response


# -- Manage Connections --------------------------------------------------------------------------


@operator.get("/")
def home(session: Operator) -> Response:
    return redirect("/connections")


def _summary(byob: Byob, conn: Connection, now: datetime) -> dict[str, Any]:
    latest = byob.validations.latest(conn.id)
    last = byob.transfers.list(conn.id, limit=1)
    return {
        "conn": conn,
        "validation": latest,
        "validation_current": bool(latest and latest.fingerprint == conn.destination_fingerprint()),
        "last_transfer": last[0] if last else None,
        "next_run": next_run(conn, now),
        "now": now,
    }


@operator.get("/connections")
def connections(
    session: Operator, byob: ByobDep, tenant: Annotated[str | None, Query(max_length=256)] = None
) -> Response:
    now = byob.clock()
    rows = [_summary(byob, c, now) for c in byob.connections.list(tenant=tenant or None, limit=500)]
    return render("connections.html", session=session, rows=rows, tenant=tenant or "")


def validation_history(byob: Byob, conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    # The Validations repository keeps only `latest`; the page needs the history.
    from byob.store import tables as T

    c = T.validations.c
    with byob.engine.connect() as db:
        rows = db.execute(
            sa.select(c.fingerprint, c.passed, c.checks, c.created_at)
            .where(c.connection_id == conn.id)
            .order_by(c.id.desc())
            .limit(limit)
        ).all()
    current = conn.destination_fingerprint()
    return [
        {
            "passed": r.passed,
            "checks": r.checks,
            "at": r.created_at,
            "current": r.fingerprint == current,
        }
        for r in rows
    ]


def _connection_page(
    byob: Byob,
    access: Access,
    session: Session,
    name: str,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    conn = byob.connections.get(name)
    now = byob.clock()
    summary = _summary(byob, conn, now)
    links = [
        link_view(link, now)
        for link in access.links.list(tenant=conn.tenant, limit=50)
        if link.connection_id == conn.id
    ]
    return render(
        "connection.html",
        status=status,
        session=session,
        **summary,
        history=validation_history(byob, conn),
        transfers=byob.transfers.list(conn.id, limit=5),
        policies=_policies(byob, conn),
        links=links,
        notice=NOTICES.get(notice, ""),
        error=error,
        labels=CHECK_LABELS,
    )


def _policies(byob: Byob, conn: Connection) -> dict[str, Any] | None:
    if conn.type.value == "local":
        return None
    try:
        return byob.policies(conn)
    except ByobError:
        return None  # byob's own principal could not be found; the page still shows the rest


@operator.get("/connections/{name}")
def connection(
    name: str, session: Operator, byob: ByobDep, access: AccessDep, notice: str = ""
) -> Response:
    return _connection_page(byob, access, session, name, notice=notice)


def _act(action: str) -> Any:
    """A POST action on a connection; a refusal (e.g. activating an unvalidated connection)
    is shown on the connection's page."""

    def handler(
        request: Request, name: str, session: PostedBy, byob: ByobDep, access: AccessDep
    ) -> Response:
        try:
            notice = _ACTIONS[action](request, byob, access, session, name)
        except ByobError as exc:
            return _connection_page(byob, access, session, name, error=exc.message, status=409)
        return redirect(f"/connections/{quote(name)}?notice={notice}")

    handler.__name__ = f"connection_{action}"
    return handler


def _validate(request: Request, byob: Byob, access: Access, session: Session, name: str) -> str:
    _, results = byob.validate(name, actor=session.actor)
    from byob.destinations.checks import passed

    return "validated" if passed(results) else "validation_failed"


def _activate(request: Request, byob: Byob, access: Access, session: Session, name: str) -> str:
    access.after_activation(byob.activate(name, actor=session.actor))
    return "activated"


def _pause(request: Request, byob: Byob, access: Access, session: Session, name: str) -> str:
    byob.pause(name, actor=session.actor)
    return "paused"


def _run(request: Request, byob: Byob, access: Access, session: Session, name: str) -> str:
    workers = request.app.state.workers
    if workers is None:
        raise ConflictError("this server runs no workers; run `byob transfers run` instead")
    triggered = workers.trigger(name)
    byob.audit(
        actor=session.actor,
        action="transfer.trigger",
        connection_id=None,
        changes={"connection": name, "model": None, "full_refresh": False},
    )
    if not triggered.planned and triggered.busy:
        raise ConflictError(f"transfers of {', '.join(triggered.busy)} are already running")
    return "run"


_ACTIONS = {"validate": _validate, "activate": _activate, "pause": _pause, "run": _run}
for _action in _ACTIONS:
    operator.add_api_route(f"/connections/{{name}}/{_action}", _act(_action), methods=["POST"])


@operator.get("/connections/{name}/transfers")
def transfers(
    name: str,
    session: Operator,
    byob: ByobDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    conn = byob.connections.get(name)
    records = byob.transfers.list(conn.id, limit=51, offset=offset)
    return render(
        "transfers.html",
        session=session,
        conn=conn,
        transfers=records[:50],
        offset=offset,
        next_offset=offset + 50 if len(records) > 50 else None,
    )


# -- connection links ----------------------------------------------------------------------------


def _links_page(
    byob: Byob,
    access: Access,
    session: Session,
    *,
    created: dict[str, Any] | None = None,
    error: str = "",
    tenant: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    now = byob.clock()
    names = {c.id: c.name for c in byob.connections.list()}
    links = [link_view(link, now) for link in access.links.list(limit=200)]
    return render(
        "links.html",
        status=status,
        session=session,
        links=links,
        names=names,
        created=created,
        error=error,
        tenant=tenant,
        lifetimes=LINK_LIFETIMES,
        notice=NOTICES.get(notice, ""),
    )


@operator.get("/links")
def links(
    session: Operator, byob: ByobDep, access: AccessDep, tenant: str = "", notice: str = ""
) -> Response:
    return _links_page(byob, access, session, tenant=tenant[:256], notice=notice)


@operator.post("/links")
def create_link(session: PostedBy, byob: ByobDep, access: AccessDep, form: Form) -> Response:
    tenant = form.get("tenant", "").strip()
    try:
        lifetime = parse_lifetime(form.get("expires", "7d"))
        link, token = access.create_link(tenant, lifetime=lifetime, created_by=session.actor)
    except ByobError as exc:
        return _links_page(byob, access, session, error=exc.message, tenant=tenant, status=422)
    created = link_view(link, byob.clock()) | {"url": access.link_url(token)}
    # The token is shown this once (it is stored only as a hash).
    return _links_page(byob, access, session, created=created)


@operator.post("/links/{link_id}/revoke")
def revoke_link(link_id: str, session: PostedBy, access: AccessDep) -> Response:
    access.revoke_link(link_id, actor=session.actor)
    return redirect("/links?notice=revoked")


router.include_router(operator)
router.include_router(pages_connect.router)
