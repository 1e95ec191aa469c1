"""The transfer engine on the embedded components — a SQLite source, the SQLite state store and
a local directory — so its exactly-once steps are checked in milliseconds: windows,
incremental runs, a failure mid-file and its retry, cancellation and schema changes."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from byob.destinations.local import LocalDestination
from byob.domain.connections import AuthKind, Connection, ConnectionType, Status
from byob.domain.models import ModelSpec, NullCursor
from byob.domain.transfers import FileState, TransferStatus
from byob.domain.windows import TransferType
from byob.engine.transfer import EngineOptions, TransferRunner
from byob.errors import DestinationError, NullCursorError, SchemaChangeError
from byob.sources import sqlite as sqlite_source
from byob.sources.sqlite import TIMESTAMP_TEXT, SqliteSource
from byob.store.db import create_engine, migrate
from byob.store.state import StateStore

SPEC = ModelSpec(
    name="invoices",
    table="invoices",
    tenant_column="tenant_id",
    cursor_column="updated_at",
    primary_key=("id",),
)
HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
# Every batch is a row group and every row group a file, so 200 rows make four files.
OPTIONS = EngineOptions(settle_lag=timedelta(0), row_group_bytes=1, file_target_bytes=1)


@pytest.fixture
def source_path(tmp_path: Path) -> Path:
    path = tmp_path / "source.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, "
            "amount NUMERIC(18,2), note TEXT, updated_at TIMESTAMPTZ)"
        )
        insert(db, range(1, 301), HOUR_AGO)
    return path


def insert(db: sqlite3.Connection, ids: range, at: datetime, note: str = "") -> None:
    db.executemany(
        "INSERT OR REPLACE INTO invoices VALUES (?, ?, ?, ?, ?)",
        [
            (i, "acme" if i % 3 else "globex", f"{i}.25", note or f"note {i:06d}" * 40, _text(at))
            for i in ids
        ],
    )


def _text(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIMESTAMP_TEXT)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    db = create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    migrate(db)
    yield StateStore(db)
    db.dispose()


@pytest.fixture
def conn(tmp_path: Path, state: StateStore) -> Connection:
    now = datetime.now(UTC)
    conn = Connection(
        id="c" * 32,
        name="c1",
        tenant="acme",
        type=ConnectionType.LOCAL,
        status=Status.ACTIVE,
        path=str(tmp_path / "out"),
        auth=AuthKind.NONE,
        created_at=now,
        updated_at=now,
    )
    state.connections.add(conn)
    return conn


@pytest.fixture
def runner(
    conn: Connection, source_path: Path, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TransferRunner]:
    monkeypatch.setattr(sqlite_source, "_BATCH_ROWS", 50)  # the source reads 50 rows at a time
    with SqliteSource(str(source_path)) as source:
        yield TransferRunner(
            conn=conn,
            source=source,
            destination=LocalDestination(conn.path),
            transfers=state.transfers,
            options=OPTIONS,
        )


def delivered(conn: Connection) -> list[int]:
    """Every id in the model's Parquet files, read back with pyarrow's dataset reader."""
    root = Path(conn.path) / "invoices"
    if not root.exists():
        return []
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=["id"])
    return sorted(table.column("id").to_pylist())


ACME = [i for i in range(1, 301) if i % 3]


def test_a_backfill_then_an_incremental_deliver_each_row_version_once(
    runner: TransferRunner, conn: Connection, state: StateStore, source_path: Path
) -> None:
    [first] = runner.run(SPEC)
    assert first.record.type is TransferType.FULL_REFRESH
    assert first.record.status is TransferStatus.SUCCEEDED and first.record.rows == len(ACME)
    assert first.record.files == 4  # 50-row batches, each its own file
    assert delivered(conn) == ACME
    manifest = json.loads((Path(conn.path) / first.record.manifest_key).read_text())  # type: ignore[operator]
    assert sum(f["rows"] for f in manifest["files"]) == len(ACME)
    assert (
        state.transfers.model_state(conn.id, "invoices").high_water_mark == first.record.window.high
    )

    with sqlite3.connect(source_path) as db:
        insert(db, range(1, 4), first.record.window.high + timedelta(milliseconds=1), "changed")
    [second] = runner.run(SPEC)
    assert second.record.type is TransferType.INCREMENTAL
    assert second.record.window.low == first.record.window.high
    assert second.record.rows == 2  # ids 1 and 2 are acme's; 3 is globex's
    assert delivered(conn) == sorted([*ACME, 1, 2])


class BreakOnFile:
    """A destination whose ``nth`` file fails to commit, as an S3 outage would."""

    def __init__(self, inner: LocalDestination, nth: int) -> None:
        self.inner, self.nth, self.opened = inner, nth, 0

    def open_writer(self, key: str, **kwargs: Any) -> Any:
        self.opened += 1
        writer = self.inner.open_writer(key, **kwargs)
        if self.opened == self.nth:

            def fail() -> int:
                writer.abort()
                raise DestinationError("injected: the upload failed", aws_code="InternalError")

            writer.commit = fail  # type: ignore[method-assign]
        return writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failure_mid_transfer_commits_nothing_and_the_retry_finishes_the_same_window(
    runner: TransferRunner, conn: Connection, state: StateStore
) -> None:
    runner.destination = BreakOnFile(runner.destination, nth=2)  # type: ignore[assignment]
    with pytest.raises(DestinationError, match="injected"):
        runner.run(SPEC)
    [failed] = state.transfers.pending(conn.id, "invoices")
    assert failed.status is TransferStatus.FAILED and failed.attempts == 1
    assert state.transfers.model_state(conn.id, "invoices").high_water_mark is None
    assert not (Path(conn.path) / "_manifests").exists()  # no manifest: no consumer sees it
    states = [f.state for f in state.transfers.files(failed.id)]
    assert states == [FileState.COMMITTED, FileState.STARTED]

    runner.destination = runner.destination.inner  # type: ignore[attr-defined]
    model, records = runner.prepare(SPEC)
    assert records[0].id == failed.id  # the interrupted window first, then a new one
    retried, after = [runner.execute(model, r) for r in records]
    assert retried.resumed and retried.record.status is TransferStatus.SUCCEEDED
    assert after.record.window.low == failed.window.high and after.record.rows == 0
    assert retried.record.window == failed.window and retried.record.attempts == 2
    assert retried.record.note == (
        f"finished by attempt 2 after attempt 1 had failed ({failed.error})"
    )  # the record tells its whole story
    assert delivered(conn) == ACME  # every row once: file 1 was replaced, not added to


def test_a_cancelled_transfer_removes_its_files_and_the_next_covers_its_window(
    runner: TransferRunner, conn: Connection, state: StateStore
) -> None:
    _, [planned] = runner.prepare(SPEC)
    cancelled = state.transfers.request_cancel(planned.id, now=datetime.now(UTC))
    assert cancelled.status is TransferStatus.CANCELLED  # it had not started
    [after] = runner.run(SPEC)
    assert after.record.id != planned.id and after.record.window.low is None
    assert delivered(conn) == ACME


def test_a_type_change_that_is_not_widening_is_refused_and_the_mark_stays(
    runner: TransferRunner, conn: Connection, state: StateStore, source_path: Path
) -> None:
    [first] = runner.run(SPEC)
    with sqlite3.connect(source_path) as db:  # amount becomes text
        db.execute("ALTER TABLE invoices RENAME COLUMN amount TO amount_old")
        db.execute("ALTER TABLE invoices ADD COLUMN amount TEXT")
    with pytest.raises(SchemaChangeError, match="'amount' changed type"):
        runner.run(SPEC)
    mark = state.transfers.model_state(conn.id, "invoices").high_water_mark
    assert mark == first.record.window.high
    assert state.transfers.pending(conn.id, "invoices") == []  # nothing planned


# -- rows whose cursor is NULL -----------------------------------------------------------------


def _with_null_cursors(source_path: Path, ids: range) -> None:
    with sqlite3.connect(source_path) as db:
        db.executemany(
            "INSERT INTO invoices VALUES (?, 'acme', '1.00', 'no cursor', NULL)",
            [(i,) for i in ids],
        )


def test_null_cursors_fail_the_transfer_before_anything_is_written(
    runner: TransferRunner, conn: Connection, state: StateStore, source_path: Path
) -> None:
    _with_null_cursors(source_path, range(1001, 1003))
    with pytest.raises(NullCursorError) as refused:
        runner.run(SPEC)  # the default policy: fail
    message = refused.value.message
    assert "2 rows of tenant 'acme' have a NULL 'updated_at'" in message
    assert "NOT NULL" in message and "COALESCE" in message and "exclude" in message
    [failed] = state.transfers.pending(conn.id, "invoices")
    assert failed.status is TransferStatus.FAILED and failed.error == message
    assert state.transfers.files(failed.id) == [] and delivered(conn) == []
    assert state.transfers.model_state(conn.id, "invoices").high_water_mark is None


def test_null_cursors_can_be_delivered_by_backfills_only(
    runner: TransferRunner, conn: Connection, source_path: Path
) -> None:
    _with_null_cursors(source_path, range(1001, 1003))
    spec = dataclasses.replace(SPEC, on_null_cursor=NullCursor.BACKFILL_ONLY)
    [backfill] = runner.run(spec)
    assert backfill.record.rows == len(ACME) + 2
    assert delivered(conn) == sorted([*ACME, 1001, 1002])
    [incremental] = runner.run(spec)  # not again: an incremental has no place for them
    assert incremental.record.rows == 0 and incremental.record.note is None
    [refresh] = runner.run(spec, full_refresh=True)
    assert refresh.record.rows == len(ACME) + 2


def test_null_cursors_can_be_excluded_and_counted(
    runner: TransferRunner, conn: Connection, source_path: Path
) -> None:
    _with_null_cursors(source_path, range(1001, 1004))
    spec = dataclasses.replace(SPEC, on_null_cursor=NullCursor.EXCLUDE)
    [result] = runner.run(spec)
    assert result.record.rows == len(ACME) and result.record.excluded_rows == 3
    assert "3 rows with a NULL 'updated_at' were left out" in (result.record.note or "")
    manifest = json.loads((Path(conn.path) / result.record.manifest_key).read_text())  # type: ignore[operator]
    assert manifest["excluded_rows"] == 3 and manifest["note"] == result.record.note
    assert delivered(conn) == ACME


# -- query models and a tenant without rows ------------------------------------------------------


def test_a_query_model_is_filtered_by_tenant_and_window_like_a_table(
    runner: TransferRunner, conn: Connection
) -> None:
    spec = ModelSpec(
        name="big_invoices",
        query="SELECT id, tenant_id, amount * 2 AS doubled, updated_at FROM invoices "
        "WHERE id > 100",
        tenant_column="tenant_id",
        cursor_column="updated_at",
        primary_key=("id",),
    )
    [result] = runner.run(spec)
    expected = [i for i in ACME if i > 100]
    assert result.record.rows == len(expected)
    table = ds.dataset(
        Path(conn.path) / "big_invoices", format="parquet", partitioning="hive"
    ).to_table()
    assert sorted(table.column("id").to_pylist()) == expected
    assert "doubled" in table.column_names  # an expression's column, read as text


def test_a_tenant_without_rows_is_said_in_the_history(
    runner: TransferRunner, conn: Connection, state: StateStore
) -> None:
    runner.conn = dataclasses.replace(conn, tenant="nosuchtenant")
    [first] = runner.run(SPEC)
    assert first.record.rows == 0
    assert "tenant 'nosuchtenant' has no rows in this model yet" in (first.record.note or "")
