"""Transfers running at once in one process share one transfer's buffers."""

from __future__ import annotations

import pytest

from byob.engine.transfer import EngineOptions

MIB = 1 << 20


def test_one_transfer_keeps_the_configured_buffers() -> None:
    options = EngineOptions(row_group_bytes=16 * MIB, read_ahead_batches=4)
    assert options.shared_by(1) is options
    assert options.shared_by(0) is options


@pytest.mark.parametrize(
    ("transfers", "row_group_mib", "read_ahead"),
    [(2, 8, 2), (3, 16 / 3, 1), (4, 4, 1), (8, 4, 1), (32, 4, 1)],
)
def test_buffers_are_split_down_to_a_floor(
    transfers: int, row_group_mib: float, read_ahead: int
) -> None:
    shared = EngineOptions(row_group_bytes=16 * MIB, read_ahead_batches=4).shared_by(transfers)
    assert shared.row_group_bytes == pytest.approx(row_group_mib * MIB, abs=1024)
    assert shared.read_ahead_batches == read_ahead
    assert shared.file_target_bytes == EngineOptions().file_target_bytes  # not a buffer


@pytest.mark.parametrize(("transfers", "part_mib"), [(1, 16), (2, 8), (3, 16 / 3), (4, 5), (16, 5)])
def test_multipart_parts_are_split_down_to_the_s3_minimum(transfers: int, part_mib: float) -> None:
    shared = EngineOptions(part_bytes=16 * MIB).shared_by(transfers)
    assert shared.part_bytes == pytest.approx(part_mib * MIB, abs=1024)


def test_row_groups_configured_below_the_floor_stay_as_configured() -> None:
    shared = EngineOptions(row_group_bytes=1 * MIB).shared_by(4)
    assert shared.row_group_bytes == 1 * MIB


@pytest.mark.parametrize(("transfers", "budget_mib"), [(1, 64), (2, 32), (4, 16), (16, 4)])
def test_fan_outs_at_once_split_their_budget_too(transfers: int, budget_mib: int) -> None:
    shared = EngineOptions(fan_out_buffer_bytes=64 * MIB).shared_by(transfers)
    assert shared.fan_out_buffer_bytes == budget_mib * MIB


def test_a_budget_configured_below_the_floor_stays_as_configured() -> None:
    assert EngineOptions(fan_out_buffer_bytes=1 * MIB).shared_by(2).fan_out_buffer_bytes == MIB
