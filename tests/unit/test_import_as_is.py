"""Which text values COPY may be given as the file has them (engine.import_values.
copy_reads_as_is), and the blocks a CSV file is read in; PostgreSQL's own reading of the values
is compared in tests/integration/test_import_as_is.py."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from byob.domain.imports import import_column
from byob.engine.csv_blocks import Blocks
from byob.engine.import_values import copy_reads_as_is

TS = import_column("at", "timestamptz")
QTY = import_column("q", "numeric(18,6)")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2026-01-31T12:00:00Z", "2026-01-31T13:00:00Z"], True),  # one length: bytes looked at
        (["2026-01-31T12:00:00Z", None, "2026-01-31T13:00:00.5Z"], True),  # Arrow's slicing
        (["2026-01-31T12:00:00Z", "2026-01-31T12+01:00"], False),
        (["2026-01-31T12:00:00+01:00", "2026-01-31T12:00:00.5-15:00"], True),
        (["2026-01-31T12:00:00+01:00", "2026-01-31T12:00:00+16:00"], False),
        (["2026-01-31T12:00:00+01:00", "2026-01-31T12:00:00+0100"], False),
        ([None, None], True),
    ],
)
def test_timestamps_copy_reads_as_arrow_did(values: list[str | None], expected: bool) -> None:
    assert copy_reads_as_is(TS, pa.array(values, pa.string())) is expected


def test_a_slice_is_judged_by_its_own_values() -> None:
    """Arrow slices share their parent's buffers: only the slice's characters count."""
    values = pa.array(["1e3", "1.5", "2.5", "0x1"], pa.string())
    assert copy_reads_as_is(QTY, values.slice(1, 2))
    assert not copy_reads_as_is(QTY, values.slice(0, 2))
    assert not copy_reads_as_is(QTY, values.slice(2, 2))
    stamps = pa.array(["2026-01-31T12Z", "2026-01-31T12:00Z", "2026-01-31T13:00Z"], pa.string())
    assert copy_reads_as_is(TS, stamps.slice(1))
    assert not copy_reads_as_is(TS, stamps.slice(0, 2))


def test_blocks_start_small_and_double() -> None:
    line = b"x" * 99 + b"\n"
    data = line * 1000  # 100 kB
    blocks = list(Blocks(io.BytesIO(data), 40_000, first=5_000))
    sizes = [len(b.data) for b in blocks]
    assert b"".join(b.data for b in blocks) == data
    assert sizes[:4] == [5_000, 10_000, 20_000, 40_000]
    assert [b.first_line for b in blocks[:3]] == [1, 51, 151]
