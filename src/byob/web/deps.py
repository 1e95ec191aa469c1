"""What API routes depend on: the use cases, and who is calling (an operator's key or a
recipient's link token, from `Authorization: Bearer`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from byob.domain.credentials import LINK_PREFIX
from byob.errors import AuthenticationError, PermissionDeniedError
from byob.services import Services
from byob.services.principals import Principal


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send `Authorization: Bearer <API key or link token>`")
    return token.strip()


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """As a dependency: awaited on the event loop, where a plain ``def`` would cost each
    request a trip through the thread pool for an attribute lookup."""
    return services_of(request)


def principal(request: Request) -> Principal:
    token = _bearer(request)
    services = services_of(request)
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


def recipient_reader(request: Request) -> Principal:
    """A link holder, to read what was delivered: its link is spent once the connection is
    active, and still reads (only) that connection's transfers until an operator revokes
    it."""
    token = _bearer(request)
    if token.startswith(LINK_PREFIX):
        return services_of(request).links.principal(token, allow_spent=True)
    return recipient(request)  # an operator's key: refused, as on every recipient endpoint


ServicesDep = Annotated[Services, Depends(get_services)]
Operator = Annotated[Principal, Depends(operator)]
Recipient = Annotated[Principal, Depends(recipient)]
RecipientReader = Annotated[Principal, Depends(recipient_reader)]
