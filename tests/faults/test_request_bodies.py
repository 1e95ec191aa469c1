"""Oversized and slow request bodies cannot exhaust a server: a body is refused with 413 as soon
as it passes BYOB_MAX_BODY_BYTES (1 MiB), before authentication looks at it, and what a flood
costs the server stays under 10 MiB of memory."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.support import Served

pytestmark = pytest.mark.integration

MIB = 1 << 20
HUGE = 200 * MIB


def rss(served: Served) -> int:
    return int(psutil.Process(served.process.pid).memory_info().rss)


def post_streaming(served: Served, path: str, *, declare: bool) -> tuple[int, int]:
    """POST a 200 MiB body in 64 KiB pieces (declared up front, or chunked) until the server
    answers; returns (status, bytes sent before the answer)."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {HUGE}\r\n" if declare else "Transfer-Encoding: chunked\r\n"
        sock.sendall((head + "\r\n").encode())
        piece = b"x" * (64 << 10)
        sent = 0
        sock.setblocking(False)
        answer = b""
        while sent < HUGE:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if b"\r\n\r\n" in answer:
                break
            chunk = piece if declare else b"%x\r\n%s\r\n" % (len(piece), piece)
            try:
                sock.send(chunk)
                sent += len(piece)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        deadline = time.monotonic() + 10
        while b"\r\n" not in answer and time.monotonic() < deadline:
            answer += sock.recv(65536)
        return int(answer.split(b" ", 2)[1]), sent
    finally:
        sock.close()


@pytest.mark.parametrize("path", ["/api/v1/connections", "/login", "/connect/bucket"])
@pytest.mark.parametrize("declare", [True, False], ids=["declared", "chunked"])
def test_an_oversized_body_is_refused_within_the_first_mib(
    served: Served, path: str, declare: bool
) -> None:
    status, sent = post_streaming(served, path, declare=declare)
    assert status == 413
    # The server stops reading at 1 MiB; loopback socket buffers hold a few MiB more.
    assert sent < 16 * MIB, f"{sent / MIB:.0f} MiB were taken before the answer"


def test_a_flood_of_oversized_and_slow_bodies_costs_under_10_mib(served: Served) -> None:
    httpx.get(f"{served.base_url}/healthz")
    before = rss(served)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(
                lambda i: post_streaming(served, "/api/v1/connections", declare=bool(i % 2)),
                range(16),
            )
        )
    assert {status for status, _ in results} == {413}
    # Slow clients trickling bodies do not keep others out.
    stop = threading.Event()

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
            sock.sendall(b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(0.5):
                sock.send(b"x")

    slow = [threading.Thread(target=trickle, daemon=True) for _ in range(20)]
    for t in slow:
        t.start()
    try:
        started = time.monotonic()
        assert httpx.get(f"{served.base_url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 2
    finally:
        stop.set()
    grown = rss(served) - before
    assert grown < 10 * MIB, f"the server grew by {grown / MIB:.1f} MiB"
