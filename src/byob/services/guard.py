"""Who may try now: the request budget of each client address and each credential, and the
lockout of an address that keeps failing to sign in (a refused API key, link token or login).

The buckets live in this process: behind several `byob serve` processes an address may spend
each one's budget. A lockout is written to the audit log once per episode, naming the address
(never the credential it tried)."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from byob.domain.ratelimit import Buckets, Rate
from byob.services.ports import Adapters

log = logging.getLogger("byob.guard")

LOCKOUT_AUDIT_SECONDS = 60.0  # one audit entry per address per lockout episode at most


@dataclass(frozen=True)
class Refusal:
    """A request turned away: why, and after how many whole seconds it may come again."""

    reason: str
    retry_after: int
    lockout: bool  # too many failed sign-ins, not too many requests


class GuardService:
    def __init__(self, adapters: Adapters, *, monotonic: Callable[[], float] = time.monotonic):
        settings = adapters.settings
        self.adapters = adapters
        self.monotonic = monotonic
        self.requests = Buckets(Rate(settings.rate_limit_per_second, settings.rate_limit_burst))
        self.failures = Buckets(Rate.per_minute(settings.auth_failures_per_minute))
        self._audited: dict[str, float] = {}
        self._lock = threading.Lock()  # requests are admitted from many threads

    def admit(self, address: str, credential: str | None, *, signing_in: bool) -> Refusal | None:
        """None when a request from ``address`` (carrying ``credential``, if any) may go on."""
        now = self.monotonic()
        with self._lock:
            if signing_in and (wait := self.failures.wait(f"a:{address}", now)):
                return Refusal(
                    f"too many failed sign-ins from {address}; wait before trying again",
                    _whole(wait),
                    lockout=True,
                )
            wait = self.requests.take(f"a:{address}", now)
            if not wait and credential is not None:
                wait = self.requests.take(f"k:{_fingerprint(credential)}", now)
        if wait:
            return Refusal("too many requests; slow down", _whole(wait), lockout=False)
        return None

    def failed_sign_in(self, address: str) -> bool:
        """Count a refused credential (before its answer leaves, so the next request already
        sees it); True when this failure starts a lockout, to be recorded with `lockout`."""
        now = self.monotonic()
        with self._lock:
            left = self.failures.charge(f"a:{address}", now)
            last = self._audited.get(address, -math.inf)
            if left >= 1.0 or now - last < LOCKOUT_AUDIT_SECONDS:
                return False
            self._audited[address] = now
            if len(self._audited) > self.failures.max_keys:
                self._audited.pop(next(iter(self._audited)))
            return True

    def lockout(self, address: str, *, where: str) -> None:
        """Log and audit that ``address`` is locked out (once per episode)."""
        per_minute = self.adapters.settings.auth_failures_per_minute
        log.warning(
            "sign-ins from %s refused for now: %d failed in a minute (last at %s)",
            address,
            per_minute,
            where,
            extra={"fields": {"address": address, "where": where}},
        )
        self.adapters.state.audit.record(
            actor=f"address:{address}",
            action="auth.lockout",
            connection_id=None,
            changes={"address": address, "failures_per_minute": per_minute, "where": where},
            now=self.adapters.clock(),
        )


def _fingerprint(credential: str) -> str:
    """Buckets are keyed by a digest: no token is held in memory longer than its request."""
    return hashlib.sha256(credential.encode()).hexdigest()[:32]


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))
