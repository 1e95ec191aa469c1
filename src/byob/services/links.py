"""Connection links: one-time, expiring, revocable URLs through which a recipient creates,
validates and activates the one connection of their tenant — and touches nothing else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from byob.domain import credentials, fields, ids
from byob.domain.connections import Connection, ConnectionType, Status
from byob.domain.credentials import Link, LinkState
from byob.domain.paging import Page, cursors, every
from byob.errors import (
    AuthenticationError,
    ConflictError,
    GoneError,
    InvalidFieldError,
    NotFoundError,
    PermissionDeniedError,
)
from byob.services.connections import ConnectionService, Created
from byob.services.health import serves_byob
from byob.services.ports import Adapters
from byob.services.principals import Principal
from byob.store.repository import new_id

_GONE = {
    LinkState.EXPIRED: "has expired",
    LinkState.REVOKED: "was revoked",
    LinkState.SPENT: "was used to activate its connection",
}


READ_ONLY = (
    "this link only shows your connection's deliveries; it cannot change anything. "
    "To change the connection, ask your vendor for a connection link"
)


def gone_reason(state: LinkState) -> str:
    """Why a link can no longer be used, and what to do."""
    return f"this connection link {_GONE[state]}; ask your vendor for a new one"


class LinkService:
    def __init__(self, adapters: Adapters, connections: ConnectionService) -> None:
        self.adapters = adapters
        self.connections = connections
        self.links = adapters.state.links

    # -- the operator's side ---------------------------------------------------------------------

    def create(
        self,
        tenant: str,
        *,
        lifetime: timedelta,
        actor: str,
        draft: Connection | None = None,
        shows: Connection | None = None,
    ) -> tuple[Link, str]:
        """A link for a tenant; its token is returned once and stored only as a hash. With a
        ``draft``, the link continues that connection (its recipient resumes the wizard at the
        IAM role step) instead of creating one. With ``shows``, a read-only link: it opens
        that connection's delivery page and can change nothing."""
        now = self.adapters.clock()
        token = credentials.new_token(credentials.LINK_PREFIX)
        if draft is not None and shows is not None:
            raise InvalidFieldError("a link either continues a draft or shows deliveries")
        target = _continuable(draft, tenant) if draft else None
        if shows is not None:
            target = _showable(shows, tenant)
        link = Link(
            id=new_id(),
            tenant=fields.tenant(tenant),
            created_at=now,
            expires_at=now + lifetime,
            created_by=actor,
            connection_id=None if target is None else target.id,
            read_only=shows is not None,
        )
        with self.adapters.state.atomic() as tx:
            tx.links.add(link, token)
            tx.audit.record(
                actor=actor,
                action="link.create",
                connection_id=link.connection_id,
                changes={
                    "link": link.id,
                    "tenant": link.tenant,
                    "expires_at": link.expires_at.isoformat(),
                }
                | ({"connection": link.connection_id} if link.connection_id else {})
                | ({"read_only": True} if link.read_only else {}),
                now=now,
            )
        return link, token

    def create_for(
        self,
        tenant: str,
        *,
        lifetime: timedelta,
        actor: str,
        connection: str | None = None,
        read_only: bool = False,
    ) -> tuple[Link, str]:
        """A link as a front door asks for one: a ``read_only`` link shows the ``connection``
        named (of this tenant); a link naming a draft continues it; otherwise it creates one."""
        if read_only and connection is None:
            raise InvalidFieldError(
                "a read-only link shows one connection: name it", field="connection"
            )
        conn = None if connection is None else self._of_tenant(tenant, connection)
        if read_only:
            return self.create(tenant, lifetime=lifetime, actor=actor, shows=conn)
        return self.create(tenant, lifetime=lifetime, actor=actor, draft=conn)

    def _of_tenant(self, tenant: str, name_or_id: str) -> Connection:
        """Names are unique per tenant: the tenant's connection of that name, else by ID."""
        if "/" not in name_or_id:
            try:
                return self.connections.get(f"{tenant}/{name_or_id}")
            except NotFoundError:
                pass
        return self.connections.get(name_or_id, field="connection")

    def url(self, token: str) -> str:
        return f"{self.adapters.settings.public_url.rstrip('/')}/connect/{token}"

    def url_warning(self) -> str | None:
        """Why links made now may open nothing: BYOB_PUBLIC_URL names this machine, yet no
        byob server answers there. Another host's address cannot be judged from here."""
        base = self.adapters.settings.public_url.rstrip("/")
        if not credentials.names_this_machine(base) or serves_byob(base):
            return None
        return (
            f"the link points at {base}, where no byob server answers; set BYOB_PUBLIC_URL "
            "to the address recipients reach `byob serve` on"
        )

    def page(
        self,
        *,
        tenant: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> Page[Link]:
        """Newest first; ``after``/``before`` are a previous page's ``next``/``previous``."""
        start_after, end_before = cursors(after, before)
        return self.links.page(tenant=tenant, after=start_after, before=end_before, limit=limit)

    def every(self, *, tenant: str | None = None) -> list[Link]:
        """All of them, a page (one query) at a time."""
        return every(lambda after, limit: self.page(tenant=tenant, after=after, limit=limit))

    def of_connection(self, conn: Connection) -> list[Link]:
        return self.links.of_connection(conn.id)

    def revoke(self, link_id: str, *, actor: str) -> Link:
        """Revoke a link, named by its ID or, git-style, a start of it no other link's has."""
        link_id = ids.resolve("link", link_id, self.links.ids_starting_with)
        now = self.adapters.clock()
        with self.adapters.state.atomic() as tx:
            link = tx.links.revoke(link_id, now=now)
            tx.audit.record(
                actor=actor,
                action="link.revoke",
                connection_id=link.connection_id,
                changes={"link": link_id},
                now=now,
            )
        return link

    # -- the recipient's side --------------------------------------------------------------------

    def open(self, token: str, *, allow_spent: bool = False) -> Link:
        """The link behind a token, if it may still be used (a spent one too when
        ``allow_spent``: it still reads its own connection's transfers; a read-only link
        only then)."""
        link = self.links.find(token) if token.startswith(credentials.LINK_PREFIX) else None
        if link is None:
            raise AuthenticationError("this connection link is not valid; ask for a new one")
        return self.usable(link, allow_spent=allow_spent)

    def get(self, link_id: str, *, allow_spent: bool = False) -> Link:
        """A link by ID (a recipient's session holds it), if it may still be used; a spent
        one too when ``allow_spent`` (the wizard's last page)."""
        return self.usable(self.links.get(link_id), allow_spent=allow_spent)

    def usable(self, link: Link, *, allow_spent: bool = False) -> Link:
        """``allow_spent`` is a use that only reads; anything else may write, which a
        read-only link is refused."""
        state = link.state(self.adapters.clock())
        if state is LinkState.OPEN or (allow_spent and state is LinkState.SPENT):
            if link.read_only and not allow_spent:
                raise PermissionDeniedError(READ_ONLY)
            return link
        raise GoneError(gone_reason(state))

    def principal(self, token: str, *, allow_spent: bool = False) -> Principal:
        link = self.open(token, allow_spent=allow_spent)
        return Principal(actor=f"link:{link.id}", link=link)

    def own_connection(self, principal: Principal, name_or_id: str | None = None) -> Connection:
        """The connection a caller may act on: any for operators; for a link, only the one
        that link created (anything else is reported as not found, revealing nothing)."""
        if principal.link is None:
            if name_or_id is None:
                raise InvalidFieldError("which connection?", field="connection")
            return self.connections.get(name_or_id)
        link = principal.link
        if link.connection_id is None:
            raise NotFoundError("this link has not created a connection yet")
        conn = self.connections.get(link.connection_id)
        if name_or_id is not None and name_or_id not in (conn.id, conn.name):
            raise NotFoundError(f"no connection named {name_or_id!r}")
        return conn

    def connection_of(self, link: Link) -> Connection | None:
        return self.connections.get(link.connection_id) if link.connection_id else None

    def create_connection(
        self, principal: Principal, fields: dict[str, Any], secret: str | None
    ) -> Created:
        """The link's one connection, for the link's tenant (an operator running the wizard
        names the tenant in ``fields``): an s3 or athena destination."""
        link = principal.link
        if link is not None and link.connection_id is not None:
            raise ConflictError("this link already created its connection; update it instead")
        if fields.get("type", "s3") not in (ConnectionType.S3.value, ConnectionType.ATHENA.value):
            raise InvalidFieldError("a link creates an s3 or athena connection", field="type")
        if link is not None:
            fields = {k: v for k, v in fields.items() if k != "tenant"}
        return self.connections.create(
            actor=principal.actor, secret_access_key=secret, link=link, **fields
        )

    def update_connection(
        self,
        principal: Principal,
        changes: dict[str, Any],
        secret: str | None,
        *,
        connection: str | None = None,
    ) -> Connection:
        """A recipient's changes to their connection (an operator's, to the ``connection``
        named); after its creation, the schedule is the vendor's."""
        conn = self.own_connection(principal, connection)
        if not principal.is_operator and "frequency_minutes" in changes:
            asked = changes.pop("frequency_minutes")
            if asked is not None and str(asked) != str(conn.frequency_minutes):
                raise InvalidFieldError(
                    f"the schedule (every {conn.frequency_minutes} minutes) is your vendor's "
                    "once the connection exists: ask them to change it",
                    field="frequency_minutes",
                )
        return self.connections.update(
            conn.id, changes, actor=principal.actor, secret_access_key=secret
        ).connection


def _showable(conn: Connection, tenant: str) -> Connection:
    """A connection a read-only link may show: the link's tenant's, s3 or athena, not a draft."""
    _linkable(conn, tenant, "a read-only link shows")
    if conn.status is Status.DRAFT:
        raise ConflictError(
            f"connection {conn.name} is a draft: send a link for the draft to finish it"
        )
    return conn


def _continuable(conn: Connection, tenant: str) -> Connection:
    """A connection a link may take over: a draft s3 or athena connection of the link's tenant
    (an active one would be changed, and sent back to draft, by whoever holds the link)."""
    _linkable(conn, tenant, "a link continues")
    if conn.status is not Status.DRAFT:
        raise ConflictError(
            f"connection {conn.name} is {conn.status.value}: a link continues only a draft"
        )
    return conn


def _linkable(conn: Connection, tenant: str, what: str) -> None:
    """What every link to a connection needs: the link's tenant's, and in AWS (s3 or athena)."""
    if conn.tenant != tenant:
        raise InvalidFieldError(
            f"connection {conn.name} is tenant {conn.tenant}'s, not {tenant}'s", field="tenant"
        )
    if conn.type not in (ConnectionType.S3, ConnectionType.ATHENA):
        raise InvalidFieldError(f"{what} only an s3 or athena connection", field="connection")
