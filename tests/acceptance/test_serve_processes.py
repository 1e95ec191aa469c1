"""The real `byob serve` on several processes (PostgreSQL state): one port, every process
answering, SIGTERM stopping them all with status 0, and a process that dies taking the whole
of `byob serve` down with status 1 (so that its supervisor starts it again), never leaving it
half up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support import TEST_SECRET_KEY, TEST_SIGNING_KEY, serving, wait_for


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid …: comm may hold spaces, so split after its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def started_processes(log: Path) -> set[str]:
    return {
        line.split("Started server process [", 1)[1].split("]", 1)[0]
        for line in log.read_text().splitlines()
        if "Started server process [" in line
    }


def serving_on(tmp_path: Path, pg_url: str, *, processes: int) -> Any:
    """`byob serve` with PostgreSQL state on ``processes`` processes."""
    return serving(
        tmp_path,
        database_url=pg_url,
        secret_key=TEST_SECRET_KEY,
        signing_key=TEST_SIGNING_KEY,
        web_processes=str(processes),
    )


def test_every_process_answers_and_sigterm_stops_them_all(tmp_path: Path, pg_url: str) -> None:
    with serving_on(tmp_path, pg_url, processes=3) as served:
        children = children_of(served.process.pid)
        assert len(children) == 2
        wait_for(lambda: len(started_processes(served.log_path)) == 3, what="three processes")
        assert started_processes(served.log_path) == {str(served.process.pid)} | {
            str(c) for c in children
        }

        def get(_: int) -> int:
            # A new connection each time: the processes take turns to accept.
            return httpx.get(f"{served.base_url}/healthz", timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(get, range(200))) == {200}
        served.process.terminate()
        assert served.process.wait(timeout=60) == 0
        assert not [c for c in children if alive(c)]
        assert "ended" not in served.log_path.read_text()


def test_a_process_that_dies_stops_byob_serve_with_status_1(tmp_path: Path, pg_url: str) -> None:
    with serving_on(tmp_path, pg_url, processes=2) as served:
        [child] = children_of(served.process.pid)
        wait_for(lambda: len(started_processes(served.log_path)) == 2, what="both processes")
        os.kill(child, signal.SIGKILL)
        assert served.process.wait(timeout=60) == 1
        assert f"web process {child} ended (exit status -9); stopping byob serve" in (
            served.log_path.read_text()
        )


def test_the_other_processes_end_when_the_first_is_killed(tmp_path: Path, pg_url: str) -> None:
    with serving_on(tmp_path, pg_url, processes=2) as served:
        [child] = children_of(served.process.pid)
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=30)
        wait_for(lambda: not alive(child), what="the second process to end with the first")


def test_the_embedded_default_serves_from_one_process(tmp_path: Path) -> None:
    env = dict(os.environ) | {"BYOB_HOME": str(tmp_path / ".byob"), "BYOB_WEB_PROCESSES": "2"}
    env.pop("BYOB_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "byob.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert (
        "--web-processes above 1 needs a PostgreSQL state store "
        "(BYOB_DATABASE_URL=postgresql://…): the embedded default runs in one process"
    ) in done.stderr


def test_sigterm_stops_the_embedded_default_with_status_0(tmp_path: Path) -> None:
    """uvicorn raises SIGTERM again once it has stopped; byob notes it and drains its transfer
    threads instead of dying of it (status -15, threads never stopped)."""
    with serving(tmp_path) as served:
        served.process.terminate()
        assert served.process.wait(timeout=60) == 0
        assert "Finished server process" in served.log_path.read_text()
