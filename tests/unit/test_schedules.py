"""UTC-aligned schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byob.domain.schedules import FREQUENCIES, due, frequency, next_run, slot_start
from byob.errors import InvalidFieldError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("freq", "now", "start"),
    [
        (60, "2026-11-22T10:59:59", "2026-11-22T10:00:00"),
        (60, "2026-11-22T11:00:00", "2026-11-22T11:00:00"),
        (15, "2026-11-22T10:44:00", "2026-11-22T10:30:00"),
        (360, "2026-11-22T13:00:00", "2026-11-22T12:00:00"),
        (720, "2026-11-22T11:59:00", "2026-11-22T00:00:00"),
        (1440, "2026-11-22T23:59:59", "2026-11-22T00:00:00"),
    ],
)
def test_slots_are_aligned_to_utc(freq: int, now: str, start: str) -> None:
    assert slot_start(freq, at(now)) == at(start)


def test_other_offsets_are_converted_to_utc() -> None:
    tokyo = datetime(2026, 11, 22, 9, 30, tzinfo=timezone(timedelta(hours=9)))  # 00:30 UTC
    assert slot_start(60, tokyo) == at("2026-11-22T00:00:00")
    assert next_run(1440, tokyo) == at("2026-11-23T00:00:00")


def test_due_runs_each_slot_once_and_a_missed_slot_once() -> None:
    assert due(60, last_slot=None, now=at("2026-11-22T10:20:00")) == at("2026-11-22T10:00:00")
    assert due(60, last_slot=at("2026-11-22T10:00:00"), now=at("2026-11-22T10:59:00")) is None
    assert due(60, last_slot=at("2026-11-22T10:00:00"), now=at("2026-11-22T11:00:00")) == at(
        "2026-11-22T11:00:00"
    )
    # down for three hours: one run for the current slot, not three
    assert due(60, last_slot=at("2026-11-22T07:00:00"), now=at("2026-11-22T10:05:00")) == at(
        "2026-11-22T10:00:00"
    )


@pytest.mark.parametrize("bad", [0, 5, 30, 120, 10080])
def test_other_frequencies_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="frequency"):
        slot_start(bad, at("2026-11-22T10:00:00"))


@given(
    st.sampled_from(FREQUENCIES),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_next_run_is_the_following_aligned_slot(freq: int, naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC)
    start, nxt = slot_start(freq, now), next_run(freq, now)
    assert start <= now < nxt
    assert nxt - start == timedelta(minutes=freq)
    minutes = (nxt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(minutes=1)
    assert minutes % freq == 0


@pytest.mark.parametrize(("given", "minutes"), [(15, 15), (1440, 1440), ("60", 60), (" 360 ", 360)])
def test_a_frequency_is_one_of_the_choices(given: object, minutes: int) -> None:
    assert frequency(given) == minutes


@pytest.mark.parametrize("bad", [0, 30, 10080, "daily", "", None, True, 60.0])
def test_any_other_frequency_is_refused_with_the_choices(bad: object) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        frequency(bad)
    assert refused.value.field == "frequency_minutes"
    assert refused.value.message == (
        "frequency must be one of these minutes: 15 (every 15 minutes), 60 (hourly), "
        "360 (every 6 hours), 720 (every 12 hours), 1440 (daily)"
    )
