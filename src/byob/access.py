"""Operator API keys and connection links: issuing, checking, and what a link may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from byob.domain import access
from byob.domain.access import ApiKey, Link, LinkState
from byob.domain.connections import Connection, ConnectionType, Status
from byob.errors import (
    AuthenticationError,
    ConflictError,
    GoneError,
    InvalidFieldError,
    NotFoundError,
)
from byob.store.access import ApiKeys, Links
from byob.store.repositories import new_id

if TYPE_CHECKING:
    from byob.app import Byob


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: an operator (by key name) or a recipient holding a link."""

    actor: str
    link: Link | None = None

    @property
    def is_operator(self) -> bool:
        return self.link is None


CLI = Principal(actor="cli")


class Access:
    def __init__(self, app: Byob) -> None:
        self.app = app
        self.keys = ApiKeys(app.engine)
        self.links = Links(app.engine)

    # -- operator keys -----------------------------------------------------------------------

    def create_api_key(self, name: str) -> tuple[ApiKey, str]:
        """A new key; the token is returned once and stored only as a hash."""
        if not name or len(name) > 128:
            raise InvalidFieldError("an API key needs a name of 1-128 characters", field="name")
        token = access.new_token(access.API_KEY_PREFIX)
        return self.keys.add(name, token, now=self.app.clock()), token

    def authenticate(self, token: str) -> Principal:
        if token.startswith(access.API_KEY_PREFIX):
            key = self.keys.find(token)
            if key is not None:
                return Principal(actor=f"operator:{key.name}")
        elif token.startswith(access.LINK_PREFIX):
            return Principal(actor="link", link=self.open_link(token))
        raise AuthenticationError("unknown or revoked credentials")

    # -- links -------------------------------------------------------------------------------

    def create_link(self, tenant: str, *, lifetime: timedelta, created_by: str) -> tuple[Link, str]:
        from byob.domain import fields

        now = self.app.clock()
        token = access.new_token(access.LINK_PREFIX)
        link = Link(
            id=new_id(),
            tenant=fields.tenant(tenant),
            created_at=now,
            expires_at=now + lifetime,
            created_by=created_by,
        )
        self.links.add(link, token)
        self.app.audit(
            actor=created_by,
            action="link.create",
            connection_id=None,
            changes={"link": link.id, "tenant": tenant, "expires_at": link.expires_at.isoformat()},
        )
        return link, token

    def link_url(self, token: str) -> str:
        return f"{self.app.settings.public_url.rstrip('/')}/connect/{token}"

    def open_link(self, token: str) -> Link:
        """The link behind a token, if it may still be used."""
        link = self.links.find(token)
        if link is None:
            raise AuthenticationError("this connection link is not valid; ask for a new one")
        state = link.state(self.app.clock())
        if state is not LinkState.OPEN:
            why = {
                LinkState.EXPIRED: "has expired",
                LinkState.REVOKED: "was revoked",
                LinkState.SPENT: "was used: its connection is active",
            }[state]
            raise GoneError(f"this connection link {why}; ask your vendor for a new one")
        return link

    def revoke_link(self, link_id: str, *, actor: str) -> Link:
        link = self.links.revoke(link_id, now=self.app.clock())
        self.app.audit(
            actor=actor,
            action="link.revoke",
            connection_id=link.connection_id,
            changes={"link": link_id},
        )
        return link

    # -- what a link holder may touch --------------------------------------------------------

    def own_connection(self, principal: Principal, name_or_id: str | None = None) -> Connection:
        """The connection a caller may act on: any for operators; for a link, only the one
        that link created (anything else is reported as not found, revealing nothing)."""
        if principal.link is None:
            if name_or_id is None:
                raise InvalidFieldError("which connection?", field="connection")
            return self.app.connections.get(name_or_id)
        link = principal.link
        if link.connection_id is None:
            raise NotFoundError("this link has not created a connection yet")
        conn = self.app.connections.get(link.connection_id)
        if name_or_id is not None and name_or_id not in (conn.id, conn.name):
            raise NotFoundError(f"no connection named {name_or_id!r}")
        return conn

    def create_via_link(
        self, principal: Principal, fields: dict[str, Any], secret: str | None
    ) -> Connection:
        link = principal.link
        assert link is not None
        if link.connection_id is not None:
            raise ConflictError("this link already created its connection; update it instead")
        if fields.get("type", "s3") not in (ConnectionType.S3.value, ConnectionType.ATHENA.value):
            raise InvalidFieldError("a link creates an s3 or athena connection", field="type")
        conn = self.app.create_connection(
            tenant=link.tenant, secret_access_key=secret, actor=f"link:{link.id}", **fields
        )
        try:
            self.links.attach(link.id, conn.id)
        except ConflictError:
            # Another request through the same link won the race: one link, one connection.
            self.app.delete_connection(conn.id, actor=f"link:{link.id}")
            raise
        return conn

    def after_activation(self, conn: Connection) -> None:
        """Activating the connection a link created spends the link."""
        if conn.status is not Status.ACTIVE:
            return
        for link in self.links.list(tenant=conn.tenant, limit=1000):
            if link.connection_id == conn.id and link.spent_at is None:
                self.links.spend(link.id, now=self.app.clock())
