"""Operator webhooks: a signed JSON POST on transfer outcomes and failing connections.

Receivers verify `X-Byob-Signature: sha256=<hex>`, an HMAC-SHA256 under the shared secret of
`<X-Byob-Timestamp>.<raw body>`, and reject stale timestamps (replays)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

from byob.domain.failures import backoff

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


class WebhookNotifier:
    """Delivers events in a background thread, retrying with backoff; never blocks transfers."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        max_attempts: int = 6,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.secret = secret
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.sleep = sleep
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._loop, name="byob-webhooks", daemon=True)
        self._thread.start()

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((str(event), payload))
        except queue.Full:
            log.error("webhook queue full; dropping %s", event)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            self.deliver(*item)

    def deliver(self, event: str, payload: dict[str, Any]) -> bool:
        body = json.dumps(
            {"event": event, "at": time.time(), "data": payload}, default=str
        ).encode()
        for attempt in range(1, self.max_attempts + 1):
            timestamp = str(int(time.time()))
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-Byob-Event": event,
                    "X-Byob-Timestamp": timestamp,
                    "X-Byob-Signature": sign(self.secret, timestamp, body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return True
            except (urllib.error.URLError, OSError) as exc:
                log.warning("webhook %s attempt %d failed: %s", event, attempt, exc)
            if attempt < self.max_attempts:
                self.sleep(backoff(attempt, base=1.0, cap=60.0))
        log.error("webhook %s not delivered after %d attempts", event, self.max_attempts)
        return False

    def close(self, *, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout=timeout)
