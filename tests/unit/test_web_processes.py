"""`byob serve`'s web processes: a stop signal is never dropped."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from byob.cli import web_processes


@pytest.fixture
def restored_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class ServerStartingLate:
    """A server that gets the signal before it has taken the signals over (a second process
    whose first was killed while it started), as uvicorn does before `capture_signals`."""

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig
        self.should_exit = False

    def run(self, sockets: list[Any]) -> None:
        os.kill(os.getpid(), self.sig)
        for _ in range(10_000):  # Python runs the handler between two bytecodes of this thread
            if self.should_exit:
                return


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_before_the_server_takes_signals_over_still_stops_it(
    restored_signals: None, sig: signal.Signals
) -> None:
    server = ServerStartingLate(sig)
    with socket.socket() as sock:
        web_processes.run(server, sock)
    assert server.should_exit  # dropped, the process would answer on alone, forever
