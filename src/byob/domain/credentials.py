"""Who may act: operator API keys and one-time connection links. Tokens are random and shown
once; only their SHA-256 is stored, so a leaked state store yields no usable token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from ipaddress import ip_address
from urllib.parse import urlsplit

from byob.errors import InvalidFieldError

API_KEY_PREFIX = "byob_key_"
LINK_PREFIX = "byob_link_"
TOKEN_BYTES = 32  # 256 bits: guessing is hopeless
DEFAULT_LINK_LIFETIME = timedelta(days=7)
MAX_LINK_LIFETIME = timedelta(days=90)


def new_token(prefix: str) -> str:
    """A URL-safe random token; the prefix tells operators which kind of secret leaked."""
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def parse_lifetime(text: str) -> timedelta:
    """'7d', '12h', '30m' → a lifetime between one minute and 90 days."""
    text = text.strip().lower()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    digits = text[:-1]
    # ASCII digits only (str.isdigit also takes '²'), and few enough for timedelta.
    if len(text) < 2 or text[-1] not in units or not (digits.isascii() and digits.isdigit()):
        raise InvalidFieldError(f"expiry {text!r} must look like 7d, 12h or 30m", field="expires")
    amount = int(digits)
    if amount > 200_000:  # more minutes than 90 days has: out of range whatever the unit
        raise InvalidFieldError("a link must live between 1 minute and 90 days", field="expires")
    lifetime = timedelta(**{units[text[-1]]: amount})
    if not timedelta(minutes=1) <= lifetime <= MAX_LINK_LIFETIME:
        raise InvalidFieldError("a link must live between 1 minute and 90 days", field="expires")
    return lifetime


def names_this_machine(url: str) -> bool:
    """Whether ``url``'s host is this machine's loopback (localhost, 127.0.0.0/8, ::1): a link
    there opens only where byob runs."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:  # a name: another machine, as far as the URL can tell
        return False


class LinkState(StrEnum):
    OPEN = "open"
    EXPIRED = "expired"
    REVOKED = "revoked"
    SPENT = "spent"  # its connection was activated


@dataclass(frozen=True, kw_only=True)
class Link:
    id: str
    tenant: str
    created_at: datetime
    expires_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    spent_at: datetime | None = None
    connection_id: str | None = None
    # A read-only link shows an active connection's deliveries to its recipient and can
    # change nothing; it is never spent (it creates nothing to activate).
    read_only: bool = False

    def state(self, now: datetime) -> LinkState:
        if self.revoked_at is not None:
            return LinkState.REVOKED
        if self.spent_at is not None:
            return LinkState.SPENT
        if now >= self.expires_at:
            return LinkState.EXPIRED
        return LinkState.OPEN


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
