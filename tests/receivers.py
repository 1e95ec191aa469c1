"""An operator's webhook endpoint on 127.0.0.1, for tests: it verifies every POST as a
receiver must (`byob.workers.webhooks.verify`) and keeps what it received."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from byob.workers.webhooks import verify


@dataclass
class Received:
    event: str
    timestamp: str
    signature: str
    content_type: str
    body: bytes
    verified: bool
    status: int


class Receiver:
    """An operator's endpoint on 127.0.0.1: verifies each POST as a receiver must, answers 500
    to the first ``fail_first`` requests and 200 (or 401 when unverified) after."""

    def __init__(self, secret: str, *, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                timestamp = self.headers.get("X-Byob-Timestamp", "")
                signature = self.headers.get("X-Byob-Signature", "")
                ok = verify(
                    receiver.secret,
                    timestamp=timestamp,
                    body=body,
                    signature=signature,
                    now=time.time(),
                )
                with receiver._lock:
                    failing = len(receiver.received) < receiver.fail_first
                    status = 500 if failing else (200 if ok else 401)
                    receiver.received.append(
                        Received(
                            event=self.headers.get("X-Byob-Event", ""),
                            timestamp=timestamp,
                            signature=signature,
                            content_type=self.headers.get("Content-Type", ""),
                            body=body,
                            verified=ok,
                            status=status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # quiet
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/byob"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The verified events delivered (answered 200), in order: (name, data)."""
        with self._lock:
            return [
                (r.event, json.loads(r.body)["data"])
                for r in self.received
                if r.status == 200 and r.verified
            ]
