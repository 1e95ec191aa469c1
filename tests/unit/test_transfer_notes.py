"""What a transfer says beyond its figures: rows the settle lag kept for the next transfer,
and its progress (total, rate, bytes) for a display. On the embedded components."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from byob.domain.models import resolve
from byob.domain.transfers import TransferProgress, held_back_note
from byob.domain.windows import Window
from byob.engine.transfer import TransferRunner, WithTotal
from byob.sources.sqlite import SqliteSource
from tests.unit.test_transfer_engine import (  # noqa: F401 - fixtures
    ACME,
    OPTIONS,
    SPEC,
    conn,
    insert,
    runner,
    source_path,
    state,
)

LAG = timedelta(seconds=30)


def test_the_held_back_note_counts_rows_and_names_the_lag() -> None:
    assert held_back_note(0, settle_lag_seconds=30) is None
    assert held_back_note(1, settle_lag_seconds=30) == (
        "1 row changed in the last 30 s waits for the next transfer"
    )
    assert held_back_note(2, settle_lag_seconds=30) == (
        "2 rows changed in the last 30 s wait for the next transfer"
    )
    assert held_back_note(1200, settle_lag_seconds=2.5) == (
        "1,200 rows changed in the last 2.5 s wait for the next transfer"
    )


def test_a_window_count_takes_the_tenant_and_both_bounds(source_path: Path) -> None:
    now = datetime.now(UTC)
    with sqlite3.connect(source_path) as db:
        insert(db, range(301, 311), now - timedelta(seconds=10))  # 7 of acme (i % 3 != 0)
    with SqliteSource(str(source_path)) as source:
        model = resolve(SPEC, source.model_columns(SPEC))
        recent = Window(low=now - LAG, high=now)
        assert source.count(model, tenant="acme", window=recent) == 7
        assert source.count(model, tenant="globex", window=recent) == 3
        # The low bound is exclusive, the high one inclusive, like a read of the window.
        at = now - timedelta(seconds=10)
        assert source.count(model, tenant="acme", window=Window(low=at, high=now)) == 0
        assert source.count(model, tenant="acme", window=Window(low=now - LAG, high=at)) == 7
        assert (
            source.count(model, tenant="acme", window=Window(low=None, high=now)) == len(ACME) + 7
        )


def test_rows_the_settle_lag_holds_back_are_counted_in_the_note(
    runner: TransferRunner, source_path: Path
) -> None:
    runner.options = dataclasses.replace(OPTIONS, settle_lag=LAG)
    [backfill] = runner.run(SPEC)
    assert backfill.record.rows == len(ACME) and backfill.held_back == 0
    assert backfill.record.note is None

    with sqlite3.connect(source_path) as db:
        insert(db, range(1, 4), datetime.now(UTC))  # ids 1 and 2 are acme's, 3 globex's

    [incremental] = runner.run(SPEC)
    assert incremental.record.rows == 0 and incremental.held_back == 2
    assert incremental.record.note == "2 rows changed in the last 30 s wait for the next transfer"

    runner.options = OPTIONS  # no lag: they are delivered, and nothing is held back
    [caught_up] = runner.run(SPEC)
    assert caught_up.record.rows == 2 and caught_up.held_back == 0
    assert caught_up.record.note is None


def test_progress_reports_the_window_total_rows_and_bytes(runner: TransferRunner) -> None:
    seen: list[TransferProgress] = []
    [result] = runner.run(SPEC, progress=WithTotal(seen.append))
    assert seen[0].rows == 0 and seen[0].bytes == 0
    assert {(p.total, p.estimated, p.transfer_id) for p in seen} == {
        (len(ACME), False, result.record.id)
    }
    assert [p.rows for p in seen] == sorted(p.rows for p in seen)
    assert seen[-1].rows == len(ACME) and seen[-1].eta_seconds == 0
    assert seen[-1].bytes > 0  # files of one row group each are written as it goes


def test_progress_without_a_total_unless_asked(runner: TransferRunner) -> None:
    """The total is a count of the window (one more read of it): only for `WithTotal`."""
    seen: list[TransferProgress] = []
    runner.run(SPEC, progress=seen.append)
    assert seen and {(p.total, p.eta_seconds) for p in seen} == {(None, None)}
    assert seen[-1].rows == len(ACME)


def test_progress_rate_and_time_left() -> None:
    p = TransferProgress(
        transfer_id="t", model="m", rows=250, bytes=10, total=1000, estimated=True, elapsed=5
    )
    assert p.rows_per_second == 50 and p.eta_seconds == 15
    assert p.to_dict() == {
        "transfer": "t",
        "model": "m",
        "rows": 250,
        "total": 1000,
        "estimated": True,
        "rows_per_second": 50.0,
        "bytes": 10,
        "eta_seconds": 15.0,
    }
    unknown = dataclasses.replace(p, total=None)
    assert unknown.eta_seconds is None
    assert dataclasses.replace(p, elapsed=0).eta_seconds is None
