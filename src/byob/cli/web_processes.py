"""`byob serve` on several processes: one listening socket, bound once, shared by forked
processes that each answer requests with their own interpreter (their own GIL), their own
state-store connections and their own rate-limit buckets. The first process also runs the
scheduler and watches the others: when one ends, it stops them all and `byob serve` exits 1,
so that a supervisor starts it again rather than leaving a part of it down."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from byob.errors import ConfigError, ConflictError

log = logging.getLogger("byob.serve")

MAX_DEFAULT = 8  # processes when not told: one per CPU, at most this many
STOP_SECONDS = 30.0  # a process still answering after SIGTERM this long is killed
_PR_SET_PDEATHSIG = 1  # prctl(2)


def listen(host: str, port: int) -> socket.socket:
    """The socket every process accepts on; a port in use is said plainly, before anything
    starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn binds: a port left in TIME_WAIT may be bound again, one listened on not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConflictError(
                f"port {port} on {host} is in use (another byob serve?); choose another with --port"
            ) from exc
        raise ConfigError(f"cannot listen on port {port} on {host}: {exc.strerror or exc}") from exc
    sock.listen(2048)  # uvicorn's backlog
    sock.set_inheritable(True)
    return sock


def how_many(requested: int | None, *, production: bool) -> int:
    """One per CPU with PostgreSQL state; one on the embedded default, whose SQLite state and
    transfer threads live in the one process."""
    if requested is None:
        return min(MAX_DEFAULT, len(os.sched_getaffinity(0))) if production else 1
    if requested > 1 and not production:
        raise ConfigError(
            "--web-processes above 1 needs a PostgreSQL state store "
            "(BYOB_DATABASE_URL=postgresql://…): the embedded default runs in one process",
            field="web_processes",
        )
    return requested


def fork(run: Callable[[], None]) -> int:
    """A child process that runs ``run`` and exits with its status; it is sent SIGTERM if the
    first process dies without stopping it (even by kill -9)."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _die_with(parent)
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        from byob.cli.root import close_services

        with contextlib.suppress(Exception):
            close_services()
        sys.stderr.flush()
        os._exit(code)
    raise AssertionError("unreachable")  # pragma: no cover


def _die_with(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def server(app: Any) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=True))


def run(first: Any, sock: socket.socket) -> None:
    """Answer on ``sock`` until SIGTERM or SIGINT, then return (uvicorn raises the signal again
    once it has stopped, which by default would end the process before the caller drains its
    transfers and stops the other processes: here it only asks the server to stop, which it
    has). A signal that comes before uvicorn takes the signals over (a second process whose
    first is killed while it starts) must stop it too, not be dropped: the process would
    answer on, alone, forever."""

    def stop(*_: Any) -> None:
        first.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    first.run(sockets=[sock])


class Watch:
    """Waits for each other process; one that ends while this one still answers ends it too
    (``failed``: byob serve exits 1). ``stop_all`` sends them SIGTERM and waits."""

    def __init__(self, pids: list[int], first: Any) -> None:
        self.first = first  # the uvicorn server of this process
        self.failed = False
        self._stopping = False
        self._alive = set(pids)
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._wait, args=(pid,), name=f"watch-{pid}", daemon=True)
            for pid in pids
        ]
        for thread in self._threads:
            thread.start()

    def _wait(self, pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        with self._lock:
            self._alive.discard(pid)
            if self._stopping or self.first.should_exit:
                self.failed |= code not in (0, -signal.SIGTERM, -signal.SIGINT)
                return
            self.failed = True
        log.error("web process %d ended (exit status %d); stopping byob serve", pid, code)
        self.first.should_exit = True

    def stop_all(self) -> None:
        with self._lock:
            self._stopping = True
            alive = list(self._alive)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for thread in self._threads:
            thread.join(STOP_SECONDS)
        with self._lock:
            alive = list(self._alive)
        for pid in alive:
            log.error(
                "web process %d still running %.0f s after SIGTERM; killed", pid, STOP_SECONDS
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for thread in self._threads:
            thread.join(5)
