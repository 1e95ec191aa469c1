"""A fan-out's scanned batch split by member: every member gets exactly its rows, in scan
order, with an estimate of their Arrow bytes that adds up to the batch's."""

from __future__ import annotations

import pyarrow as pa

from byob.engine.fanout import _split


def _batch(members: list[int]) -> tuple[pa.RecordBatch, pa.Array]:
    rows = len(members)
    batch = pa.record_batch(
        {
            "id": pa.array(range(rows), pa.int64()),
            "note": pa.array([f"row {i} " + "x" * (i % 7) for i in range(rows)]),
        }
    )
    return batch, pa.array(members, pa.int32())


def test_each_member_gets_its_rows_in_scan_order() -> None:
    members = [2, 0, 2, 1, 0, 2, 2, 1]
    batch, tags = _batch(members)
    pieces = _split(batch, tags)
    got = {index: piece.column("id").to_pylist() for index, piece, _ in pieces}
    assert got == {
        member: [row for row, m in enumerate(members) if m == member] for member in (0, 1, 2)
    }


def test_estimated_bytes_share_the_batch_by_rows() -> None:
    batch, tags = _batch([i % 3 for i in range(3000)])
    pieces = _split(batch, tags)
    estimated = sum(nbytes for _, _, nbytes in pieces)
    measured = sum(piece.nbytes for _, piece, _ in pieces)
    assert abs(estimated - measured) <= 0.01 * measured
    for _, piece, nbytes in pieces:
        # A slice measured exactly differs from its share only by its own strings' lengths.
        assert abs(nbytes - piece.nbytes) < 0.05 * piece.nbytes


def test_one_member_keeps_the_batch_whole() -> None:
    batch, tags = _batch([4, 4, 4])
    assert _split(batch, tags) == [(4, batch, batch.nbytes)]


def test_an_empty_batch_has_no_pieces() -> None:
    batch, tags = _batch([])
    assert _split(batch, tags) == []
