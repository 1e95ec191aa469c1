"""Every way of running transfers at once in one process shares one transfer's buffers:
`byob serve`'s embedded workers, `byob worker --concurrency N`, `transfers run --all --parallel N`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from byob.cli.transfers import _run_all
from byob.services import Services
from byob.workers import queue as q
from byob.workers.runtime import build_runtime
from tests.support import make_services, write_config

pytestmark = pytest.mark.integration

MIB = 1 << 20


@pytest.fixture
def app(tmp_path: Path) -> Services:
    config = write_config(tmp_path / "byob.toml", f"sqlite:///{tmp_path / 'src.sqlite'}", [])
    return make_services(tmp_path, config, row_group_bytes=16 * MIB, multipart_part_bytes=16 * MIB)


def assert_split(app: Services, ways: int) -> None:
    assert app.adapters.concurrent_transfers == ways
    options = app.adapters.engine_options()
    assert options.row_group_bytes == 16 * MIB // ways
    assert options.part_bytes == 16 * MIB // ways
    assert options.read_ahead_batches == 4 // ways


def test_one_transfer_at_a_time_keeps_the_configured_buffers(app: Services) -> None:
    assert_split(app, 1)


def test_the_embedded_workers(app: Services) -> None:
    runtime = build_runtime(app, threads=2)
    try:
        assert_split(app, 2)
    finally:
        runtime.stop()


def test_transfers_run_all_parallel(app: Services, capsys: pytest.CaptureFixture[str]) -> None:
    _run_all(app, model=None, full_refresh=False, as_json=True, parallel=2)
    assert '"connections": []' in capsys.readouterr().out
    assert_split(app, 2)


def test_byob_worker_concurrency(app: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def work(queue: Any, **options: Any) -> None:
        """Stands in for the worker loop, which would block until SIGTERM."""
        seen.update(options)

    monkeypatch.setattr(q, "work", work)
    q.run_worker(app, object(), concurrency=3)  # type: ignore[arg-type]
    assert seen["concurrency"] == 3
    assert seen["outage_limit"] == app.adapters.settings.worker_outage_seconds
    assert_split(app, 3)
