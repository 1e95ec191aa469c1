"""The operator's web pages: sign-in, Manage Connections, a connection with its validation
history, transfer history, and connection links. The recipient's wizard is in pages_connect.

`router` carries both; `create_app` includes it (and mounts STATIC_DIR at /static)."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from byob.domain.connections import NEXT_STEPS, Connection, after_resume, after_validation
from byob.domain.credentials import parse_lifetime
from byob.domain.transfers import TransferStatus, cancel_outcome
from byob.errors import ByobError, ConflictError
from byob.services import Services
from byob.services.imports import rejections_view
from byob.services.views import link_view, transfer_view
from byob.web import pages_connect
from byob.web.deps import ServicesDep
from byob.web.errors import status_of
from byob.web.pages_base import (
    CSRF_FIELD,
    OPERATOR_SESSION_SECONDS,
    STATIC_DIR,
    PageRoute,
    Session,
    check_csrf,
    clear_session,
    form_body,
    form_lists,
    operator_session,
    read_session,
    redirect,
    render,
    safe_next,
    write_session,
)
from byob.web.pages_fields import model_choice, selection_message
from byob.web.pages_help import CHECK_LABELS

__all__ = ["STATIC_DIR", "router"]

operator = APIRouter(route_class=PageRoute, include_in_schema=False)
router = APIRouter(include_in_schema=False)

NOTICES = {
    **NEXT_STEPS,
    "activated": "The connection is active; transfers run on its schedule.",
    "paused": "The connection is paused; no transfers run until it is resumed.",
    "run": "Transfers started; they appear in the history below as they run.",
    **{
        f"cancel-{status}": f"The transfer {cancel_outcome(status)}."
        for status in TransferStatus
        if status is not TransferStatus.SUCCEEDED
    },
    "revoked": "The link was revoked; it can no longer be opened.",
    "retried": "The file is no longer rejected: the next run tries it again (Run now tries it "
    "at once).",
    "models": "The models it receives are saved. A model selected again starts with a "
    "backfill: its next transfer delivers all its rows.",
}
PAGE_SIZE = 50  # rows on one page of the connections, links and transfers lists
LINK_LIFETIMES = (("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"))


# -- dependencies --------------------------------------------------------------------------------


Form = Annotated[dict[str, str], Depends(form_body)]
FormLists = Annotated[dict[str, list[str]], Depends(form_lists)]


def signed_in(request: Request, services: ServicesDep) -> Session:
    return operator_session(request, services)


Operator = Annotated[Session, Depends(signed_in)]


def posted(request: Request, session: Operator, form: Form) -> Session:
    check_csrf(request, session, form.get(CSRF_FIELD))
    return session


PostedBy = Annotated[Session, Depends(posted)]


# -- sign-in -------------------------------------------------------------------------------------


def _login_page(
    request: Request,
    services: Services,
    *,
    error: str = "",
    next_url: str = "/connections",
    status: int = 200,
) -> Response:
    session = read_session(request, services, "operator")
    if session is None or session.signed_in:
        session = Session(kind="operator", expires=time.time() + 3600)
    response = render("login.html", status=status, session=session, error=error, next_url=next_url)
    write_session(response, request, services, session)
    return response


@operator.get("/login")
def login_form(request: Request, services: ServicesDep, next: str = "/connections") -> Response:
    return _login_page(request, services, next_url=safe_next(next, "/connections"))


@operator.post("/login")
def login(request: Request, services: ServicesDep, form: Form) -> Response:
    check_csrf(request, read_session(request, services, "operator"), form.get(CSRF_FIELD))
    key = services.api_keys.find(form.get("api_key", "").strip())
    next_url = safe_next(form.get("next"), "/connections")
    if key is None:
        return _login_page(
            request,
            services,
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
    write_session(response, request, services, session)  # a fresh CSRF token: no fixation
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


@operator.get("/connections")
def connections(
    session: Operator,
    services: ServicesDep,
    tenant: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    page = services.connections.listing(
        tenant=tenant or None, after=after, before=before, limit=PAGE_SIZE
    )
    return render(
        "connections.html",
        problems=services.health.problems(),
        session=session,
        page=page,
        rows=page.items,
        tenant=tenant or "",
        now=services.now(),
    )


def _connection_page(
    services: Services,
    session: Session,
    name: str,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    created_link: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    chosen_models: list[str] | None = None,
) -> Response:
    conn = services.connections.get(name)
    now = services.now()
    _, recent = services.transfers.history(conn.id, limit=5)
    offered = [] if conn.is_import else services.models.offered(columns=False)
    view = services.connections.view(conn)
    return render(
        "connection.html",
        problems=services.health.problems(),
        status=status,
        session=session,
        conn=conn,
        view=view,
        now=now,
        history=services.connections.validation_history(conn, operator_notes=True),
        transfers=[transfer_view(t) for t in recent.items],
        policies=_policies(services, conn),
        links=[link_view(link, now) for link in services.links.of_connection(conn)],
        notice=NOTICES.get(notice, ""),
        error=error,
        labels=CHECK_LABELS,
        created_link=created_link,
        lifetimes=LINK_LIFETIMES,
        rejected=rejections_view(services.imports.rejected(conn)) if conn.is_import else None,
        offered=offered,
        # Without a readable models file, the selection as stored.
        received=view["receives"] if view["receives"] is not None else list(conn.models or ()),
        chosen_models=chosen_models if errors else conn.models,
        errors=errors or {},
    )


def _policies(services: Services, conn: Connection) -> dict[str, Any] | None:
    try:
        return services.connections.policies(conn) or None
    except ByobError:
        return None  # byob's own principal could not be found; the page still shows the rest


@operator.get("/connections/{name}")
def connection(name: str, session: Operator, services: ServicesDep, notice: str = "") -> Response:
    return _connection_page(services, session, name, notice=notice)


def _act(action: str) -> Any:
    """A POST action on a connection; a refusal (e.g. activating an unvalidated connection)
    is shown on the connection's page."""

    def handler(name: str, session: PostedBy, services: ServicesDep) -> Response:
        try:
            notice = _ACTIONS[action](services, session.actor, name)
        except ByobError as exc:
            return _connection_page(services, session, name, error=exc.message, status=409)
        return redirect(f"/connections/{quote(name)}?notice={notice}")

    handler.__name__ = f"connection_{action}"
    return handler


def _validate(services: Services, actor: str, name: str) -> str:
    done = services.connections.validate(name, actor=actor)
    return after_validation(done.connection, passed=done.passed)


def _activate(services: Services, actor: str, name: str) -> str:
    services.connections.activate(name, actor=actor)
    return "activated"


def _resume(services: Services, actor: str, name: str) -> str:
    return after_resume(services.connections.resume(name, actor=actor))


def _pause(services: Services, actor: str, name: str) -> str:
    services.connections.pause(name, actor=actor)
    return "paused"


def _run(services: Services, actor: str, name: str) -> str:
    triggered = services.transfers.trigger(name, actor=actor)
    if not triggered.planned and not triggered.queued and triggered.busy:
        raise ConflictError(f"transfers of {', '.join(triggered.busy)} are already running")
    return "run"


_ACTIONS = {
    "validate": _validate,
    "activate": _activate,
    "resume": _resume,
    "pause": _pause,
    "run": _run,
}
for _action in _ACTIONS:
    operator.add_api_route(f"/connections/{{name}}/{_action}", _act(_action), methods=["POST"])


@operator.post("/connections/{name}/models")
def choose_models(
    name: str, session: PostedBy, services: ServicesDep, lists: FormLists
) -> Response:
    """Change the models an export connection receives (every offered one when all are
    checked); one selected again starts with a backfill."""
    conn = services.connections.get(name)
    offered = [m.name for m in services.models.offered(columns=False)]
    selection = model_choice(lists, offered, conn.models)
    if selection is None:
        selection = []  # a form without the checkboxes chose nothing
    message = selection_message(selection)
    try:
        if message is None:
            services.connections.update(conn.id, {"models": selection}, actor=session.actor)
    except ByobError as exc:
        message = exc.message
    if message is not None:
        return _connection_page(
            services,
            session,
            conn.id,
            status=422,
            errors={"models": message},
            chosen_models=selection,
        )
    return redirect(f"/connections/{quote(conn.id)}?notice=models#models-title")


@operator.post("/connections/{name}/imports/retry")
def retry_rejected_file(
    name: str, session: PostedBy, services: ServicesDep, form: Form
) -> Response:
    """Forget that a file was rejected, so the next run tries it again."""
    conn = services.connections.get(name)
    try:
        services.imports.retry(conn, form.get("key", ""), actor=session.actor)
    except ByobError as exc:
        return _connection_page(services, session, conn.id, error=exc.message, status=409)
    return redirect(f"/connections/{quote(conn.id)}?notice=retried#rejected-title")


@operator.post("/connections/{name}/link")
def send_draft_link(name: str, session: PostedBy, services: ServicesDep, form: Form) -> Response:
    """A link that continues this draft: its recipient resumes the wizard at the IAM role
    step, in their own AWS account."""
    conn = services.connections.get(name)
    return _send_link(services, session, conn, form, draft=conn)


@operator.post("/connections/{name}/read-only-link")
def send_read_only_link(
    name: str, session: PostedBy, services: ServicesDep, form: Form
) -> Response:
    """A read-only link to this connection's delivery page, for its recipient."""
    conn = services.connections.get(name)
    return _send_link(services, session, conn, form, shows=conn)


def _send_link(
    services: Services, session: Session, conn: Connection, form: dict[str, str], **purpose: Any
) -> Response:
    """A link for this connection's tenant (``draft=`` or ``shows=`` it), on its page."""
    try:
        lifetime = parse_lifetime(form.get("expires", "7d"))
        link, token = services.links.create(
            conn.tenant, lifetime=lifetime, actor=session.actor, **purpose
        )
    except ByobError as exc:  # e.g. a lifetime out of range: 422, as the API answers
        return _connection_page(
            services, session, conn.id, error=exc.message, status=status_of(exc)
        )
    created = link_view(link, services.now()) | {"url": services.links.url(token)}
    # The token is shown this once (it is stored only as a hash).
    return _connection_page(services, session, conn.id, created_link=created)


@operator.get("/connections/{name}/transfers")
def transfers(
    name: str,
    session: Operator,
    services: ServicesDep,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    conn, page = services.transfers.history(name, after=after, before=before, limit=PAGE_SIZE)
    return render(
        "transfers.html",
        problems=services.health.problems(),
        session=session,
        conn=conn,
        page=page,
        transfers=[transfer_view(t) for t in page.items],
    )


@operator.post("/transfers/{transfer_id}/cancel")
def cancel_transfer(transfer_id: str, session: PostedBy, services: ServicesDep) -> Response:
    record = services.transfers.cancel(transfer_id, actor=session.actor)
    conn = services.connections.get(record.connection_id)
    return redirect(f"/connections/{conn.id}?notice=cancel-{record.status}")


# -- connection links ----------------------------------------------------------------------------


def _links_page(
    services: Services,
    session: Session,
    *,
    created: dict[str, Any] | None = None,
    error: str = "",
    tenant: str = "",
    notice: str = "",
    status: int = 200,
    after: str | None = None,
    before: str | None = None,
) -> Response:
    now = services.now()
    page = services.links.page(after=after, before=before, limit=PAGE_SIZE)
    links = [link_view(link, now) for link in page.items]
    names = services.connections.names([x["connection_id"] for x in links if x["connection_id"]])
    return render(
        "links.html",
        problems=services.health.problems(),
        status=status,
        session=session,
        page=page,
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
    session: Operator,
    services: ServicesDep,
    tenant: str = "",
    notice: str = "",
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    return _links_page(
        services, session, tenant=tenant[:256], notice=notice, after=after, before=before
    )


@operator.post("/links")
def create_link(session: PostedBy, services: ServicesDep, form: Form) -> Response:
    tenant = form.get("tenant", "").strip()
    try:
        lifetime = parse_lifetime(form.get("expires", "7d"))
        link, token = services.links.create(tenant, lifetime=lifetime, actor=session.actor)
    except ByobError as exc:
        return _links_page(services, session, error=exc.message, tenant=tenant, status=422)
    created = link_view(link, services.now()) | {"url": services.links.url(token)}
    # The token is shown this once (it is stored only as a hash).
    return _links_page(services, session, created=created)


@operator.post("/links/{link_id}/revoke")
def revoke_link(link_id: str, session: PostedBy, services: ServicesDep) -> Response:
    services.links.revoke(link_id, actor=session.actor)
    return redirect("/links?notice=revoked")


router.include_router(pages_connect.operator_wizard)  # first: /connections/new is no name
router.include_router(operator)
router.include_router(pages_connect.router)
