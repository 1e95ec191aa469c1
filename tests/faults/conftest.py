"""The fault suite's servers: real `byob serve` processes on 127.0.0.1, on their own state."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, wait_healthy, write_config


@dataclass
class Served:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`byob serve` on SQLite state (no source is read by these tests)."""
    tmp = tmp_path_factory.mktemp("faults")
    config = write_config(tmp / "byob.toml", f"sqlite:///{tmp / 'src.sqlite'}", [])
    port = free_port()
    env = dict(os.environ) | {
        "BYOB_HOME": str(tmp / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BYOB_SERVICE_PRINCIPAL_ARN": "arn:aws:iam::123456789012:role/byob",
    }
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "byob.cli", "serve", "--port", str(port), "--no-schedule"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log_path)
        yield Served(f"http://127.0.0.1:{port}", port, process, env, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)
