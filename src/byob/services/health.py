"""Whether byob can onboard recipients: it names its own AWS principal in every trust policy,
so without an AWS identity it runs degraded — transfers to existing connections may still
work, but no new connection can be created. Said once in the log, on /health, on the
operator's pages, and to a recipient opening a link, instead of a 502 at the IAM step."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from byob.errors import ByobError
from byob.services.ports import Adapters

log = logging.getLogger("byob.health")

RECHECK_SECONDS = 60.0  # a missing identity is asked for again at most this often


class HealthService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._checked_at: float | None = None

    def identity_problem(self) -> str | None:
        """Why byob cannot tell its own AWS identity, or None. Once known, the identity is
        kept; while unknown, STS is asked again at most once a minute."""
        with self._lock:
            now = time.monotonic()
            fresh = self._checked_at is not None and (
                self._problem is None or now - self._checked_at < RECHECK_SECONDS
            )
            if fresh:
                return self._problem
            before = self._problem
            try:
                self.adapters.service_principal()
                self._problem = None
            except ByobError as exc:
                self._problem = exc.message
            self._checked_at = now
            if self._problem and self._problem != before:
                log.warning("byob runs degraded: recipients cannot onboard: %s", self._problem)
            elif before and not self._problem:
                log.info("byob's AWS identity is known again: onboarding works")
            return self._problem

    def problems(self) -> list[str]:
        problem = self.identity_problem()
        if problem is None:
            return []
        return [
            "Recipients cannot create connections: byob cannot tell its own AWS identity, "
            f"which every trust policy names ({problem})."
        ]

    def report(self) -> dict[str, Any]:
        problems = self.problems()
        return {"status": "degraded" if problems else "ok", "problems": problems}


def serves_byob(base_url: str, *, timeout: float = 1.0) -> bool:
    """Whether a byob server answers its liveness check at ``base_url``, within ``timeout``
    seconds (something else on the port does not count)."""
    # Imported here: urllib.request (with http.client and ssl) costs ~80 ms, which every
    # command would pay otherwise.
    import http.client
    import urllib.request

    # No proxy: the environment's would answer for a server that is not there.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}/healthz", timeout=timeout) as response:
            return bool(response.status == 200 and json.load(response) == {"status": "ok"})
    except (OSError, ValueError, http.client.HTTPException):
        return False
