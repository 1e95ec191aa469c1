"""Running a command in a child process and measuring it from the outside.

Wall time is taken around the whole child (interpreter start-up and imports included, the same
for every contender). Peak RSS comes from GNU time's `-v` report when /usr/bin/time exists (it
reads the kernel's ru_maxrss of the child, which also covers the child's own waited-for
children); otherwise from polling the child's process tree with psutil.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = Path("/usr/bin/time")
MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")


@dataclass
class Measured:
    """The outcome of one measured child process."""

    returncode: int | None  # None when killed on timeout
    seconds: float
    peak_rss_mb: float | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def check(self, what: str) -> None:
        """Raise with the child's stderr when it failed or timed out."""
        if self.timed_out:
            raise TimeoutError(f"{what} timed out after {self.seconds:.0f}s")
        if self.returncode != 0:
            raise RuntimeError(
                f"{what} exited with {self.returncode}:\n{self.stderr[-4000:]}\n{self.stdout[-2000:]}"
            )


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> Measured:
    """Run `cmd`, returning its wall time and peak RSS; never raises on failure or timeout."""
    if GNU_TIME.exists():
        return _run_with_gnu_time(cmd, env=env, cwd=cwd, timeout=timeout)
    return _run_with_polling(cmd, env=env, cwd=cwd, timeout=timeout)


def _run_with_gnu_time(cmd, *, env, cwd, timeout) -> Measured:
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        wrapped = [str(GNU_TIME), "-v", "-o", report.name, *cmd]
        rc, seconds, out, err = _run(wrapped, env=env, cwd=cwd, timeout=timeout)
        match = MAX_RSS.search(report.read())
    rss = int(match.group(1)) / 1024 if match else None
    return Measured(rc, seconds, rss, out, err)


def _run_with_polling(cmd, *, env, cwd, timeout) -> Measured:
    """Fallback without GNU time: sample the RSS of the child and its descendants."""
    import psutil

    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # Drain pipes on threads so a chatty child cannot block on a full pipe while we poll.
    import threading

    chunks: dict[str, str] = {}
    drains = [
        threading.Thread(target=lambda n=n, s=s: chunks.__setitem__(n, s.read()), daemon=True)
        for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in drains:
        t.start()
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        if timeout is not None and time.perf_counter() - started > timeout:
            _kill_group(proc)
            break
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, max(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass  # the child exited between poll() and sampling
        time.sleep(0.02)
    proc.wait()
    seconds = time.perf_counter() - started
    for t in drains:
        t.join()
    rc = None if (timeout is not None and seconds > timeout) else proc.returncode
    return Measured(rc, seconds, peak / 2**20 or None, chunks.get("out", ""), chunks.get("err", ""))


def _run(cmd, *, env, cwd, timeout) -> tuple[int | None, float, str, str]:
    """Run to completion or timeout; a timed-out child's whole process group is killed."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # own process group, so a timeout kills grandchildren too
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        rc = None
    return rc, time.perf_counter() - started, out, err


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
