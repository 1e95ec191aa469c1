"""Operator webhooks: a signed JSON POST on transfer outcomes and failing connections, from
the state store's outbox.

Receivers verify `X-Byob-Signature: sha256=<hex>`, an HMAC-SHA256 under the shared secret of
`<X-Byob-Timestamp>.<raw body>`, reject stale timestamps (replays), and deduplicate on
`X-Byob-Event-Id` (delivery is at least once)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from byob.domain.outbox import MAX_ATTEMPTS, OutboxEvent, next_attempt
from byob.store.state import StateStore

log = logging.getLogger("byob.webhooks")


def _plain(value: Any) -> Any:
    """JSON for what payloads hold besides plain values: ISO 8601 times."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, *, timestamp: str, body: bytes, signature: str, now: float, tolerance: float = 300
) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature."""
    try:
        fresh = abs(now - float(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class OutboxEvents:
    """Events kept in the state store's outbox until the operator's endpoint has them: in the
    caller's transaction when one is given, so an event exists if and only if what it reports
    does; delivered by any byob process (at least once, with backoff, across restarts)."""

    def __init__(
        self, state: StateStore, clock: Callable[[], datetime], deliverer: WebhookDeliverer
    ) -> None:
        self.state = state
        self.clock = clock
        self.deliverer = deliverer

    def emit(self, event: str, payload: dict[str, Any], *, tx: StateStore | None = None) -> None:
        (tx or self.state).outbox.add(str(event), payload, now=self.clock())

    def start(self) -> None:
        self.deliverer.start()

    def close(self) -> None:
        self.deliverer.stop()
        self.deliverer.drain(timeout=10.0)


class WebhookDeliverer:
    """Sends due outbox events, one attempt each per pass, and records the outcome: delivered,
    or tried again later with backoff, or (after MAX_ATTEMPTS) failed until redelivered."""

    def __init__(
        self,
        state: StateStore,
        url: str,
        secret: str,
        *,
        clock: Callable[[], datetime],
        timeout: float = 10.0,
        poll_seconds: float = 1.0,
        retry_at: Callable[[int, datetime], datetime] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.state = state
        self.url = url
        self.secret = secret
        self.clock = clock
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.retry_at = retry_at or (lambda n, now: next_attempt(n, now, jitter=random.random()))
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver_due(self) -> int:
        """One pass over the due events; how many were delivered."""
        now = self.clock()
        delivered = 0
        for event in self.state.outbox.claim_due(now=now, lease=timedelta(seconds=60)):
            error = self.send(event)
            if error is None:
                self.state.outbox.delivered(event.id, now=self.clock())
                delivered += 1
                continue
            attempts = event.attempts + 1
            again = self.retry_at(attempts, self.clock()) if attempts < self.max_attempts else None
            log.warning(
                "webhook %s (%s) attempt %d failed%s: %s",
                event.event,
                event.id,
                attempts,
                "" if again else "; giving up (byob webhooks redeliver resends it)",
                error,
            )
            self.state.outbox.failed_attempt(event.id, error=error, next_attempt_at=again)
        return delivered

    def send(self, event: OutboxEvent) -> str | None:
        """POST one event; None when the endpoint took it, else why not."""
        body = json.dumps(
            {
                "id": event.id,
                "event": event.event,
                "at": event.created_at.isoformat(),
                "data": event.payload,
            },
            default=_plain,
        ).encode()
        timestamp = str(int(time.time()))
        # Every failure becomes the attempt's error: one escaping would skip recording the
        # attempt, so the event would never count towards failed and would stay claimed.
        try:
            request = urllib.request.Request(  # a URL it cannot use raises ValueError
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-Byob-Event": event.event,
                    "X-Byob-Event-Id": event.id,
                    "X-Byob-Timestamp": timestamp,
                    "X-Byob-Signature": sign(self.secret, timestamp, body),
                },
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)
        except (ValueError, http.client.HTTPException) as exc:
            # HTTPException: the endpoint answered, but not in HTTP (BadStatusLine and kin).
            return f"{type(exc).__name__}: {exc}"

    def drain(self, *, timeout: float) -> None:
        """Deliver what is due now, for at most ``timeout`` seconds (a command before it
        exits): what fails waits in the outbox for a serving process."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self.state.outbox.any_due(now=self.clock()):
                    return
                self.deliver_due()
            except Exception:
                log.exception("delivering webhooks failed")
                return

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.deliver_due()
                except Exception:
                    log.exception("delivering webhooks failed")

        self._thread = threading.Thread(target=loop, name="byob-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
