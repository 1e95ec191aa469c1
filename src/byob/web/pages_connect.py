"""The connection wizard: type → bucket → IAM role → validate → activate. A recipient reaches
it only through a connection link (under /connect); a signed-in operator runs the same steps
from Create New, choosing the tenant first (under /connections/new, then
/connections/{id}/setup once the draft exists). The wizard's state is the connection record
itself, so a refresh or a second visit resumes where its holder left off."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from byob.domain import fields, fixes, role_setup, schedules
from byob.domain.connections import AuthKind, Connection, Status
from byob.domain.credentials import LINK_PREFIX, Link, LinkState
from byob.domain.imports import ImportSpec
from byob.errors import (
    AuthenticationError,
    ByobError,
    GoneError,
    InvalidFieldError,
    NotFoundError,
    PermissionDeniedError,
)
from byob.services import Services
from byob.services.imports import rejections_view
from byob.services.principals import Principal
from byob.services.views import transfer_view
from byob.web import pages_help
from byob.web.deps import ServicesDep, services_of
from byob.web.pages_base import (
    CSRF_FIELD,
    CSRF_HEADER,
    SECURITY_HEADERS,
    PageError,
    PageRoute,
    Redirect,
    Session,
    check_csrf,
    form_body,
    form_lists,
    operator_session,
    read_session,
    redirect,
    render,
    write_session,
)
from byob.web.pages_fields import check_form, field_message, model_choice, selection_message

router = APIRouter(prefix="/connect", route_class=PageRoute, include_in_schema=False)
LINK_SESSION_SECONDS = 24 * 3600
STEPS = (
    ("type", "Connection type"),
    ("bucket", "S3 bucket"),
    ("role", "IAM role"),
    ("validate", "Validate"),
)
TYPES = (
    (
        "s3",
        "Bring your own S3 bucket",
        "byob writes Parquet files into a bucket you own; read them with any engine.",
    ),
    (
        "athena",
        "S3 bucket with AWS Athena",
        "The same files, registered in AWS Glue so you can query them in Athena at once.",
    ),
)
DIRECTIONS = ("export", "import")


OPERATOR_DOOR = (
    "/connections/"  # the operator's wizard: /connections/new/…, /connections/{id}/setup/…
)


@dataclass(frozen=True)
class Holder:
    """Who runs the wizard: a recipient (their link session and the link behind it, which
    names the tenant and, once created, the connection), or a signed-in operator (``link``
    None) who chose ``tenant`` and whose draft, once created, is ``connection_id``."""

    session: Session
    link: Link | None
    tenant: str = ""
    connection_id: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(actor=self.session.actor, link=self.link)

    @property
    def link_read_only(self) -> bool:
        return self.link is not None and self.link.read_only

    @property
    def asks_tenant(self) -> bool:
        """An operator before the draft exists: the tenant is theirs to choose."""
        return self.link is None and self.connection_id is None

    def connection(self, services: Services) -> Connection | None:
        if self.link is not None:
            return services.links.connection_of(self.link)
        return services.connections.get(self.connection_id) if self.connection_id else None

    def on(self, conn: Connection) -> Holder:
        """The same holder, once ``conn`` exists (a link knows its connection already)."""
        if self.link is not None:
            return self
        return replace(self, tenant=conn.tenant, connection_id=conn.id)

    def url(self, step: str, **query: str) -> str:
        """Where this holder finds a step of the wizard."""
        if self.link is not None:
            path = f"/connect/{step}"
        elif self.connection_id is None:
            path, query = f"{OPERATOR_DOOR}new/{step}", {"tenant": self.tenant} | query
        elif step == "done":  # the operator's own page of the connection
            return f"{OPERATOR_DOOR}{self.connection_id}?notice=activated"
        else:
            path = f"{OPERATOR_DOOR}{self.connection_id}/setup/{step}"
        return f"{path}?{urlencode(query)}" if query else path


def _operator_holder(request: Request) -> Holder:
    services = services_of(request)
    session = operator_session(request, services)
    cid = request.path_params.get("cid")
    if cid is None:
        return Holder(session=session, link=None, tenant=request.query_params.get("tenant", ""))
    conn = services.connections.get(cid)
    return Holder(session=session, link=None, tenant=conn.tenant, connection_id=conn.id)


def _holder(request: Request, *, allow_spent: bool) -> Holder:
    services = services_of(request)
    if request.url.path.startswith(OPERATOR_DOOR):
        return _operator_holder(request)
    session = read_session(request, services, "link")
    if session is None or session.link_id is None:
        raise PageError(
            401,
            "Open your connection link",
            "These pages are reached through the connection link your vendor sent you. Open "
            "that link again; it works until your connection is activated.",
        )
    try:
        link = services.links.get(session.link_id, allow_spent=allow_spent)
    except GoneError as exc:
        raise PageError(410, "This link can no longer be used", exc.message) from None
    except PermissionDeniedError as exc:  # a read-only link, on a step that may write
        raise PageError(403, "This link only shows your deliveries", exc.message) from None
    return Holder(session=session, link=link)


NOT_READY = (
    "This service is not ready to accept connections yet. Please contact the company that "
    "sent you this link; your link stays valid."
)


def _ready(services: Services) -> None:
    """Onboarding needs byob's own AWS identity (every trust policy names it); without one a
    recipient is told at once, not met with an error at the IAM role step."""
    if services.health.identity_problem() is not None:
        raise PageError(503, "Not ready yet", NOT_READY)


def open_holder(request: Request) -> Holder:
    holder = _holder(request, allow_spent=False)
    if holder.link is not None:  # an operator's pages show byob's own problems already
        _ready(services_of(request))
    return holder


def any_holder(request: Request) -> Holder:
    return _holder(request, allow_spent=True)


Recipient = Annotated[Holder, Depends(open_holder)]
Form = Annotated[dict[str, str], Depends(form_body)]
FormLists = Annotated[dict[str, list[str]], Depends(form_lists)]


def posted(request: Request, holder: Recipient, form: Form) -> Holder:
    check_csrf(request, holder.session, form.get(CSRF_FIELD))
    return holder


PostedBy = Annotated[Holder, Depends(posted)]


def _page(template: str, holder: Holder, step: str, status: int = 200, **context: Any) -> Response:
    return render(
        template,
        status=status,
        session=holder.session,
        steps=STEPS,
        step=step,
        tenant=holder.tenant if holder.link is None else holder.link.tenant,
        operator=holder.link is None,
        ask_tenant=holder.asks_tenant,
        step_url=holder.url,
        **context,
    )


def _need(holder: Holder, services: Services) -> Connection:
    """The link's connection, or back to the bucket step that creates it."""
    conn = holder.connection(services)
    if conn is None:
        raise Redirect(holder.url("bucket"))
    if conn.status is Status.ACTIVE:
        raise Redirect(holder.url("done"))
    return conn


# -- resume and the type step --------------------------------------------------------------------


@router.get("")
def resume(request: Request, services: ServicesDep) -> Response:
    if (
        read_session(request, services, "link") is None
        and request.headers.get("sec-fetch-site") == "cross-site"
    ):
        # Browsers withhold a SameSite=Strict cookie from the redirect that ends a navigation
        # begun on another site (the email holding the link); one same-site hop sends it.
        return render("connect/continue.html")
    holder = any_holder(request)
    conn = holder.connection(services)
    if conn is None:
        return redirect("/connect/type")
    if holder.link is not None and holder.link.read_only:
        return redirect("/connect/delivery")
    spent = holder.link is not None and holder.link.state(services.now()) is LinkState.SPENT
    if conn.status is Status.ACTIVE or spent:
        return redirect("/connect/done")
    if services.connections.view(conn)["validation"] is not None:
        return redirect("/connect/validate")
    return redirect("/connect/role")


def _type_page(
    holder: Holder,
    services: Services,
    conn: Connection | None,
    *,
    chosen: str,
    direction: str,
    chosen_import: str,
    status: int = 200,
    error: str = "",
    errors: dict[str, str] | None = None,
) -> Response:
    """The first step: export (to S3, or S3 with Athena) or, when the models file declares
    imports, let the vendor read files from the bucket. A connection's direction and import
    are fixed once it exists (its type may still change)."""
    imports = services.imports.declared()
    return _page(
        "connect/type.html",
        holder,
        "type",
        status=status,
        types=TYPES,
        chosen=chosen,
        direction=direction,
        imports=imports,
        chosen_import=chosen_import or (imports[0].name if imports else ""),
        fixed=conn,
        error=error,
        errors=errors or {},
    )


@router.get("/type")
def type_step(holder: Recipient, services: ServicesDep) -> Response:
    conn = holder.connection(services)
    if conn is not None and conn.status is Status.ACTIVE:
        return redirect(holder.url("done"))
    return _type_page(
        holder,
        services,
        conn,
        chosen=conn.type.value if conn else "s3",
        direction=conn.direction.value if conn else "export",
        chosen_import=conn.import_name if conn else "",
    )


@router.post("/type")
def choose_type(holder: PostedBy, services: ServicesDep, form: Form) -> Response:
    chosen = form.get("type", "s3" if form.get("direction") == "import" else "")
    errors: dict[str, str] = {}
    if holder.asks_tenant:
        holder = replace(holder, tenant=form.get("tenant", "").strip())
        if form.get("instead") == "link":
            return redirect(f"/links?tenant={quote(holder.tenant)}#create")
        try:
            fields.tenant(holder.tenant)
        except InvalidFieldError as exc:
            errors["tenant"] = exc.message
    conn = holder.connection(services)
    direction = form.get("direction", "export")
    chosen_import, error = _chosen_import(services, conn, direction, form.get("import", ""))
    if direction == "import":
        chosen = "s3"  # an import reads from a bucket; Athena does not apply
    known = chosen in dict((t[0], t) for t in TYPES)
    if not known:
        error = "Choose the kind of connection to create."
    if errors or error:
        return _type_page(
            holder,
            services,
            conn,
            status=422,
            chosen=chosen if known else "s3",
            direction=direction if direction in DIRECTIONS else "export",
            chosen_import=chosen_import,
            error=error,
            errors=errors,
        )
    if direction == "import":
        return redirect(holder.url("bucket", direction="import", **{"import": chosen_import}))
    return redirect(holder.url("bucket", type=chosen))


def _chosen_import(
    services: Services, conn: Connection | None, direction: str, chosen: str
) -> tuple[str, str]:
    """The import chosen on the type step (the only one, if one is declared), and what is
    wrong with the choice ("" when nothing)."""
    if direction not in DIRECTIONS:
        return "", "Choose whether byob exports your data or reads files from your bucket."
    declared = [i.name for i in services.imports.declared()]
    chosen = chosen.strip() or (declared[0] if len(declared) == 1 else "")
    if conn is not None and (
        conn.direction.value != direction or (conn.is_import and conn.import_name != chosen)
    ):
        what = f"reads files for import {conn.import_name}" if conn.is_import else "exports"
        return conn.import_name, (
            f"This connection {what}; that cannot change once it is created. To connect the "
            "other way, ask your vendor for a new link."
        )
    if direction == "export":
        return "", ""
    if not declared:
        return "", "Your vendor reads no files from customers' buckets yet; choose an export."
    if chosen not in declared:
        return "", "Choose what your vendor reads from your bucket."
    return chosen, ""


# -- the bucket step -----------------------------------------------------------------------------


def _values(conn: Connection | None, kind: str) -> dict[str, str]:
    if conn is None:
        return {
            "type": kind,
            "direction": "export",
            "import": "",
            "name": "",
            "account_id": "",
            "bucket": "",
            "region": "",
            "base_path": "",
            "auth": "role",
            "role_arn": "",
            "access_key_id": "",
            "workgroup": "primary",
            "schema": "",
            "database": "",
            "frequency_minutes": str(schedules.FREQUENCIES[-1]),  # daily unless chosen
        }
    generated = conn.uses_generated_role
    return {
        "type": kind,
        "direction": conn.direction.value,
        "import": conn.import_name,
        "name": conn.name,
        "account_id": conn.account_id,
        "bucket": conn.bucket,
        "region": conn.region,
        "base_path": conn.base_path,
        "auth": conn.auth.value,
        "role_arn": "" if generated else conn.role_arn,
        "access_key_id": conn.access_key_id,
        "workgroup": conn.workgroup or "primary",
        "schema": conn.schema,
        "database": conn.database,
        "frequency_minutes": str(conn.frequency_minutes),
    }


def _bucket_page(
    holder: Holder,
    services: Services,
    conn: Connection | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    error: str = "",
    chosen_models: list[str] | None = None,
) -> Response:
    """The bucket step; an export's holder also chooses its models (``chosen_models``, None:
    every offered model)."""
    exporting = values["direction"] == "export"
    return _page(
        "connect/bucket.html",
        holder,
        "bucket",
        status=status,
        values=values,
        errors=errors,
        error=error,
        regions=fields.COMMERCIAL_REGIONS,
        conn=conn,
        secret_stored=bool(conn and conn.auth is AuthKind.HMAC and conn.secret_fingerprint),
        frequencies=_frequencies(services),
        # A recipient chooses the schedule when creating the connection; later it is the
        # vendor's (LinkService.update_connection).
        frequency_fixed=conn is not None and holder.link is not None,
        frequency_labels=schedules.FREQUENCY_LABELS,
        spec=None if exporting else _declared(services, values["import"]),
        offered=services.models.offered() if exporting else [],
        chosen_models=chosen_models,
    )


def _declared(services: Services, name: str) -> ImportSpec | None:
    """The models file's import of this name (None when it no longer declares it)."""
    return next((i for i in services.imports.declared() if i.name == name), None)


def _frequencies(services: Services) -> list[tuple[int, str, Any]]:
    """Each choice of schedule, its words, and its next slot after now (UTC)."""
    now = services.now()
    return [
        (m, schedules.FREQUENCY_LABELS[m], schedules.next_run(m, now))
        for m in schedules.FREQUENCIES
    ]


@router.get("/bucket")
def bucket_step(
    holder: Recipient,
    services: ServicesDep,
    type: str = "",
    direction: str = "",
    import_: Annotated[str, Query(alias="import", max_length=128)] = "",
) -> Response:
    conn = holder.connection(services)
    if conn is not None and conn.status is Status.ACTIVE:
        return redirect(holder.url("done"))
    if holder.asks_tenant and not holder.tenant:
        return redirect(holder.url("type"))
    kind = type if type in ("s3", "athena") else (conn.type.value if conn else "s3")
    values = _values(conn, kind)
    if conn is None and direction == "import":
        if _declared(services, import_) is None:
            return redirect(holder.url("type"))  # the type step chooses a declared import
        values |= {"type": "s3", "direction": "import", "import": import_}
    chosen = list(conn.models) if conn is not None and conn.models is not None else None
    return _bucket_page(holder, services, conn, values, {}, chosen_models=chosen)


@router.post("/bucket")
def save_bucket(
    holder: PostedBy, services: ServicesDep, request: Request, form: Form, lists: FormLists
) -> Response:
    conn = holder.connection(services)
    if conn is not None and conn.status is Status.ACTIVE:
        return redirect(holder.url("done"))
    values = {k: form.get(k, "").strip() for k in _values(None, "s3")}
    values["type"] = values["type"] if values["type"] in ("s3", "athena") else "s3"
    if conn is not None:  # fixed once created
        values |= {"direction": conn.direction.value, "import": conn.import_name}
    values["direction"] = "import" if values["direction"] == "import" else "export"
    if values["direction"] == "import":
        values["type"] = "s3"
    else:
        values["import"] = ""
    values["auth"] = values["auth"] if values["auth"] in ("role", "hmac") else "role"
    # A form without the choice (a script's) keeps the schedule as it is: daily if new.
    values["frequency_minutes"] = (
        values["frequency_minutes"] or _values(conn, "s3")["frequency_minutes"]
    )
    secret = form.get("secret_access_key", "").strip()
    keeps_secret = bool(
        conn
        and conn.auth is AuthKind.HMAC
        and conn.secret_fingerprint
        and values["access_key_id"] == conn.access_key_id
    )
    errors = check_form(values, secret, secret_required=not keeps_secret)
    selection = None
    if values["direction"] == "export":
        offered = [m.name for m in services.models.offered(columns=False)]
        selection = model_choice(lists, offered, conn.models if conn is not None else None)
        if (message := selection_message(selection)) is not None:
            errors["models"] = message
    chosen = None if selection in (None, ["*"]) else selection
    if errors:
        return _bucket_page(
            holder, services, conn, values, errors, status=422, chosen_models=chosen
        )
    athena = values["type"] == "athena"
    record: dict[str, Any] = {
        k: values[k]
        for k in (
            "name",
            "type",
            "account_id",
            "bucket",
            "region",
            "base_path",
            "frequency_minutes",
        )
    }
    if holder.asks_tenant:
        record["tenant"] = holder.tenant
    if conn is None and values["direction"] == "import":
        record |= {"direction": "import", "import_name": values["import"]}
    if athena:
        record |= {k: values[k] for k in ("workgroup", "schema", "database")}
    if selection is not None and (conn is not None or chosen is not None):
        record["models"] = selection  # a new connection left out of it gets every model
    hmac_auth = values["auth"] == "hmac"
    no_rows = False
    try:
        if conn is None:
            if hmac_auth:
                record["access_key_id"] = values["access_key_id"]
            elif values["role_arn"]:
                record["role_arn"] = values["role_arn"]
            created = services.links.create_connection(
                holder.principal, record, secret if hmac_auth else None
            )
            conn, no_rows = created.connection, created.tenant_rows == 0
        else:
            record["auth"] = values["auth"]
            # The step shows a role the recipient gave, and none for byob's: emptied, it goes
            # back to byob's (the hint says so); left empty, byob's stays.
            if not hmac_auth and (values["role_arn"] or not conn.uses_generated_role):
                record["role_arn"] = values["role_arn"]
            if hmac_auth and (secret or values["access_key_id"] != conn.access_key_id):
                record["access_key_id"] = values["access_key_id"]
            conn = services.links.update_connection(
                holder.principal,
                record,
                secret if hmac_auth and secret else None,
                connection=conn.id,
            )
    except ByobError as exc:
        # direction and import are chosen on the type step: their errors go above the form.
        known = (exc.field in values and exc.field not in ("direction", "import")) or (
            exc.field in ("secret_access_key", "models")
        )
        return _bucket_page(
            holder,
            services,
            conn,
            values,
            {exc.field: exc.message} if known and exc.field else {},
            status=422 if isinstance(exc, InvalidFieldError) else 409,
            error="" if known else exc.message,
            chosen_models=chosen,
        )
    holder = holder.on(conn)
    return redirect(holder.url("role", notice="no_rows") if no_rows else holder.url("role"))


@router.post("/validate-field")
async def validate_field(request: Request) -> Response:
    """The same field rules as the API, for messages while the recipient types."""
    holder = await run_in_threadpool(open_holder, request)
    check_csrf(request, holder.session, request.headers.get(CSRF_HEADER))
    try:
        body = json.loads(await request.body())
        name, value = str(body["field"]), str(body.get("value", ""))
        context = {str(k): str(v) for k, v in dict(body.get("context") or {}).items()}
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "send {field, value, context}"}, status_code=400)
    message = field_message(name, value, context)
    return JSONResponse(
        {"field": name, "ok": message is None, "message": message or ""},
        headers={"Cache-Control": "no-store"},
    )


# -- the IAM role step ---------------------------------------------------------------------------


NO_ROWS = (
    "Your vendor's data has no rows for your account yet, so transfers will deliver nothing "
    "until it has. If that is unexpected, tell your vendor: the connection may name the wrong "
    "account."
)


def _role_page(
    holder: Holder,
    services: Services,
    conn: Connection,
    error: str = "",
    status: int = 200,
    notice: str = "",
) -> Response:
    return _page(
        "connect/role.html",
        holder,
        "role",
        status=status,
        conn=conn,
        policies=services.connections.policies(conn, operator_notes=holder.link is None),
        error=error,
        notice=notice,
    )


@router.get("/role")
def role_step(holder: Recipient, services: ServicesDep, notice: str = "") -> Response:
    said = NO_ROWS if notice == "no_rows" else ""
    return _role_page(holder, services, _need(holder, services), notice=said)


@router.post("/role")
def confirm_role(holder: PostedBy, services: ServicesDep, form: Form) -> Response:
    conn = _need(holder, services)
    if form.get("confirm") != "yes":
        what = "the role" if conn.auth is AuthKind.ROLE else "the policy"
        return _role_page(
            holder,
            services,
            conn,
            status=422,
            error=f"Confirm that you created {what} as shown before you continue.",
        )
    return redirect(holder.url("validate"))


@router.get("/policies/{which}.json")
def download_policy(which: str, holder: Recipient, services: ServicesDep) -> Response:
    conn = _need(holder, services)
    policy = services.connections.policies(conn).get(f"{which}_policy")
    if which not in ("trust", "permissions") or policy is None:
        raise PageError(404, "Not found", "There is no such policy for this connection.")
    return Response(
        json.dumps(policy, indent=2) + "\n",
        media_type="application/json",
        headers=SECURITY_HEADERS
        | {"Content-Disposition": f'attachment; filename="{conn.name}-{which}-policy.json"'},
    )


@router.get("/role/cloudformation.json")
def download_template(holder: Recipient, services: ServicesDep) -> Response:
    conn = _need(holder, services)
    setup = services.connections.policies(conn).get("role_setup")
    if setup is None:
        raise PageError(404, "Not found", "This connection uses an access key, not a role.")
    return Response(
        role_setup.template_text(setup["cloudformation"]["template"]),
        media_type="application/json",
        headers=SECURITY_HEADERS
        | {"Content-Disposition": f'attachment; filename="{conn.name}-cloudformation.json"'},
    )


@router.get("/cloudformation/{connection_id}/{token}.json")
def published_template(connection_id: str, token: str, services: ServicesDep) -> Response:
    """The template for the AWS console's Launch stack link: public (the console sends no
    session), opened only by the connection's ID with its token."""
    try:
        text = services.connections.published_template(connection_id, token)
    except NotFoundError:
        raise PageError(404, "Not found", "There is no such template.") from None
    return Response(text, media_type="application/json", headers=SECURITY_HEADERS)


# -- validate and activate -----------------------------------------------------------------------


def _validate_page(
    holder: Holder, services: Services, conn: Connection, error: str = "", status: int = 200
) -> Response:
    latest = services.connections.view(conn)["validation"]
    current = bool(latest and latest["current"])
    return _page(
        "connect/validate.html",
        holder,
        "validate",
        status=status,
        conn=conn,
        latest=latest,
        current=current,
        can_activate=bool(latest and latest["passed"] and current),
        error=error,
        labels=pages_help.CHECK_LABELS,
        fixes=fixes.CHECK_FIXES,
    )


@router.get("/validate")
def validate_step(holder: Recipient, services: ServicesDep) -> Response:
    return _validate_page(holder, services, _need(holder, services))


@router.post("/validate")
def run_validation(holder: PostedBy, services: ServicesDep) -> Response:
    conn = _need(holder, services)
    services.connections.validate(conn.id, actor=holder.session.actor)
    return redirect(holder.url("validate") + "#result")


@router.post("/activate")
def activate(holder: PostedBy, services: ServicesDep) -> Response:
    conn = _need(holder, services)
    try:
        services.connections.activate(conn.id, actor=holder.session.actor)
    except ByobError as exc:
        return _validate_page(holder, services, conn, error=exc.message, status=409)
    return redirect(holder.url("done"))


DELIVERY_PAGE_SIZE = 20


@router.get("/done")
def done(request: Request, services: ServicesDep) -> Response:
    holder = any_holder(request)
    conn = holder.connection(services)
    if conn is None:
        return redirect("/connect")
    if conn.status is not Status.ACTIVE:  # paused, or back in draft, since: how it stands
        return redirect("/connect/delivery")
    return _delivery_page(holder, services, conn, activated=True)


@router.get("/delivery")
def delivery(
    request: Request,
    services: ServicesDep,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """What the link's connection delivered, for its recipient: after activation (the spent
    link's session), or through a read-only link. It reads; nothing on it writes."""
    holder = any_holder(request)
    conn = holder.connection(services)
    if conn is None or (conn.status is Status.DRAFT and _continues_wizard(holder, services)):
        return redirect("/connect")
    return _delivery_page(holder, services, conn, activated=False, after=after, before=before)


def _continues_wizard(holder: Holder, services: Services) -> bool:
    """Whether the holder's link still takes its recipient through the wizard's steps: not a
    read-only link, nor one spent on activation (its connection may be paused or back in
    draft since; it shows the delivery page then, never the steps again)."""
    link = holder.link
    return (
        link is not None
        and not link.read_only
        and link.state(services.now()) is not LinkState.SPENT
    )


def _delivery_page(
    holder: Holder,
    services: Services,
    conn: Connection,
    *,
    activated: bool,
    after: str | None = None,
    before: str | None = None,
) -> Response:
    now = services.now()
    view = services.connections.view(conn)
    models = view["receives"] or []  # none shown when the models file cannot be read
    _, page = services.transfers.history(
        conn.id, after=after, before=before, limit=DELIVERY_PAGE_SIZE
    )
    return _page(
        "connect/done.html",
        holder,
        "done",
        conn=conn,
        activated=activated,
        read_only=holder.link_read_only,
        view=view,
        transfers=[transfer_view(t) for t in page.items],
        transfers_page=page,
        models=models,
        layout=pages_help.layout_lines(conn, models),
        next_run=conn.next_run(now),
        now=now,
        frequency=schedules.FREQUENCY_LABELS.get(conn.frequency_minutes, ""),
        examples=pages_help.examples(conn, models),
        signing_key=services.manifests.keyring().current.public,
        spec=_declared(services, conn.import_name) if conn.is_import else None,
        rejected=rejections_view(services.imports.rejected(conn)) if conn.is_import else None,
    )


# -- the landing page: last, so the fixed paths above win --------------------------------------


@router.get("/{token}")
def landing(token: str, request: Request, services: ServicesDep) -> Response:
    """Check the token, bind a session cookie to its link, and drop the token from the URL."""
    if not token.startswith(LINK_PREFIX):
        raise PageError(404, "Link not found", _UNKNOWN)
    _ready(services)
    try:
        link = services.links.open(token)
    except AuthenticationError:
        raise PageError(404, "Link not found", _UNKNOWN) from None
    except GoneError as exc:
        raise PageError(410, "This link can no longer be used", exc.message) from None
    except PermissionDeniedError:  # a read-only link: it opens the delivery page
        link = services.links.open(token, allow_spent=True)
    expires = min(link.expires_at.timestamp(), time.time() + LINK_SESSION_SECONDS)
    session = Session(kind="link", link_id=link.id, actor=f"link:{link.id}", expires=expires)
    response = redirect("/connect")
    write_session(response, request, services, session)
    return response


# -- the operator's door: the same steps under /connections, with the operator's session ---------


operator_wizard = APIRouter(route_class=PageRoute, include_in_schema=False)
_BEFORE_DRAFT = ("/type", "/bucket", "/validate-field")  # the draft is made on the bucket step
_WITH_DRAFT = (
    *_BEFORE_DRAFT,
    "/role",
    "/policies/{which}.json",
    "/role/cloudformation.json",
    "/validate",
    "/activate",
)


@operator_wizard.get(f"{OPERATOR_DOOR}new")
def operator_start(request: Request) -> Response:
    """Create New: the type step, with the tenant to choose (given when the list was filtered)."""
    tenant = request.query_params.get("tenant", "")[:256]
    return redirect(Holder(session=Session(kind="operator"), link=None, tenant=tenant).url("type"))


@operator_wizard.get(OPERATOR_DOOR + "{cid}/setup")
def operator_resume(holder: Recipient, services: ServicesDep) -> Response:
    """A draft's setup resumes at its IAM role step, or at validation once validated."""
    conn = _need(holder, services)
    validated = services.connections.view(conn)["validation"] is not None
    return redirect(holder.url("validate" if validated else "role"))


# The recipient's handlers themselves: their Holder dependency tells the doors apart by path.
for _route in list(router.routes):
    if not isinstance(_route, APIRoute):
        continue
    _step = _route.path.removeprefix(router.prefix)
    for _base, _steps in (
        (f"{OPERATOR_DOOR}new", _BEFORE_DRAFT),
        (OPERATOR_DOOR + "{cid}/setup", _WITH_DRAFT),
    ):
        if _step in _steps:
            operator_wizard.add_api_route(
                _base + _step,
                _route.endpoint,
                methods=list(_route.methods or ()),
                name=f"operator_{_route.name}",
            )


_UNKNOWN = (
    "This connection link is not valid. Check that you copied the whole link, or ask "
    "your vendor for a new one."
)
