"""Object keys: data files, manifests and the connection-test object."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byob.domain import layout
from byob.domain.layout import TransferStamp
from byob.domain.manifests import manifest
from byob.domain.windows import TransferType, Window

PLUS_2 = timezone(timedelta(hours=2))
MINUS_5 = timezone(timedelta(hours=-5))
PLUS_545 = timezone(timedelta(hours=5, minutes=45))


def stamp(dt: datetime) -> TransferStamp:
    return TransferStamp(started_at=dt)


@pytest.mark.parametrize(
    ("started_at", "date", "timestamp"),
    [
        (datetime(2025, 6, 1, 12, 34, 56, tzinfo=UTC), "2025-06-01", "20250601123456"),
        # 14:05:09 at +02:00 is 12:05:09 UTC
        (datetime(2025, 6, 1, 14, 5, 9, tzinfo=PLUS_2), "2025-06-01", "20250601120509"),
        # 01:30 on 1 March at +02:00 is still 28 February in UTC
        (datetime(2025, 3, 1, 1, 30, 0, tzinfo=PLUS_2), "2025-02-28", "20250228233000"),
        # 20:00 on New Year's Eve at -05:00 is already next year in UTC
        (datetime(2024, 12, 31, 20, 0, 1, tzinfo=MINUS_5), "2025-01-01", "20250101010001"),
        # leap day reached from a quarter-hour offset
        (datetime(2024, 2, 29, 5, 44, 59, tzinfo=PLUS_545), "2024-02-28", "20240228235959"),
        # sub-second digits are dropped, not rounded
        (datetime(2025, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2025-01-02", "20250102030405"),
    ],
)
def test_stamp_is_the_start_in_utc(started_at: datetime, date: str, timestamp: str) -> None:
    s = stamp(started_at)
    assert s.date == date
    assert s.timestamp == timestamp
    assert s.utc.utcoffset() == timedelta(0)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TransferStamp(started_at=datetime(2025, 6, 1, 12, 0))


def test_data_key_exact_from_non_utc_start_rolling_over_midnight() -> None:
    s = stamp(datetime(2025, 3, 1, 1, 30, 0, tzinfo=PLUS_2))
    assert (
        layout.data_key("exports/billing", "invoices", s, 1)
        == "exports/billing/invoices/dt=2025-02-28/1_20250228233000.parquet"
    )


@pytest.mark.parametrize("prefix", ["", "/", "//"])
def test_data_key_with_empty_base_path(prefix: str) -> None:
    s = stamp(datetime(2025, 6, 1, 9, 0, 0, tzinfo=UTC))
    assert (
        layout.data_key(prefix, "invoices", s, 3)
        == "invoices/dt=2025-06-01/3_20250601090000.parquet"
    )


def test_data_key_ignores_stray_slashes_in_prefix() -> None:
    s = stamp(datetime(2025, 6, 1, 9, 0, 0, tzinfo=UTC))
    assert (
        layout.data_key("exports/", "invoices", s, 12)
        == "exports/invoices/dt=2025-06-01/12_20250601090000.parquet"
    )


@pytest.mark.parametrize("part", [0, -1, -100])
def test_file_part_counts_from_one(part: int) -> None:
    s = stamp(datetime(2025, 6, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="file_part"):
        layout.data_key("exports", "invoices", s, part)


def test_file_parts_share_the_transfer_timestamp() -> None:
    s = stamp(datetime(2025, 6, 1, 23, 59, 59, tzinfo=UTC))
    keys = [layout.data_key("p", "m", s, n) for n in (1, 2, 10)]
    assert keys == [
        "p/m/dt=2025-06-01/1_20250601235959.parquet",
        "p/m/dt=2025-06-01/2_20250601235959.parquet",
        "p/m/dt=2025-06-01/10_20250601235959.parquet",
    ]


def test_manifest_key_exact() -> None:
    s = stamp(datetime(2024, 12, 31, 20, 0, 0, tzinfo=MINUS_5))
    assert (
        layout.manifest_key("exports/billing", "invoices", s, "tr_123")
        == "exports/billing/_manifests/invoices/dt=2025-01-01/manifest_tr_123.json"
    )
    assert (
        layout.manifest_key("", "invoices", s, "tr_123")
        == "_manifests/invoices/dt=2025-01-01/manifest_tr_123.json"
    )


def test_manifest_never_lives_inside_the_model_folder() -> None:
    s = stamp(datetime(2025, 6, 1, tzinfo=UTC))
    model_folder = layout.model_prefix("exports", "invoices") + "/"
    assert model_folder == "exports/invoices/"
    assert not layout.manifest_key("exports", "invoices", s, "t1").startswith(model_folder)


def test_connection_test_key() -> None:
    assert (
        layout.connection_test_key("exports/billing", "abc123")
        == "exports/billing/_byob_connection_test/abc123.txt"
    )
    assert layout.connection_test_key("", "abc123") == "_byob_connection_test/abc123.txt"


def test_prefix_helpers() -> None:
    s = stamp(datetime(2025, 6, 1, 12, tzinfo=UTC))
    assert layout.model_prefix("", "m") == "m"
    assert layout.partition_prefix("base", "m", s) == "base/m/dt=2025-06-01"
    assert layout.join("a", "", "/b/", "c") == "a/b/c"


KEY = re.compile(
    r"(?:(?P<prefix>.+)/)?(?P<model>[a-z_]+)/dt=(\d{4}-\d\d-\d\d)/(\d+)_(\d{14})\.parquet"
)


@settings(database=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from([UTC, PLUS_2, MINUS_5, PLUS_545]),
    ),
    prefix=st.sampled_from(["", "exports", "a/b/c"]),
    part=st.integers(min_value=1, max_value=10_000),
)
def test_data_key_property_matches_layout(moment: datetime, prefix: str, part: int) -> None:
    key = layout.data_key(prefix, "invoices", stamp(moment), part)
    match = KEY.fullmatch(key)
    assert match is not None, key
    assert (match["prefix"] or "") == prefix
    utc = moment.astimezone(UTC)
    assert match[3] == utc.date().isoformat()
    assert match[4] == str(part)
    assert datetime.strptime(match[5], "%Y%m%d%H%M%S").replace(tzinfo=UTC) == utc.replace(
        microsecond=0
    )
    assert "//" not in key and not key.startswith("/")


# --- manifest body --------------------------------------------------------------------------


def test_manifest_body_lists_files_window_and_totals() -> None:
    started = datetime(2025, 6, 1, 14, 0, tzinfo=PLUS_2)
    window = Window(low=datetime(2025, 5, 31, tzinfo=UTC), high=datetime(2025, 6, 1, tzinfo=UTC))
    files = [
        {"key": "k1", "rows": 10, "bytes": 100, "sha256": "a" * 64},
        {"key": "k2", "rows": 5, "bytes": 50, "sha256": "b" * 64},
    ]
    body = manifest(
        transfer_id="tr_1",
        connection="acme",
        tenant="t1",
        model="invoices",
        kind=TransferType.INCREMENTAL,
        window=window,
        started_at=started,
        files=files,
        columns=[{"name": "id", "type": "bigint"}],
        location="s3://bkt/exports/invoices/",
    )
    assert body["transfer_type"] == "incremental"
    assert body["window"] == {
        "cursor_after": "2025-05-31T00:00:00+00:00",
        "cursor_up_to": "2025-06-01T00:00:00+00:00",
    }
    assert body["rows"] == 15 and body["bytes"] == 150
    assert body["files"] == files
    assert body["started_at"] == started.isoformat()

    backfill = manifest(
        transfer_id="tr_2",
        connection="acme",
        tenant="t1",
        model="invoices",
        kind=TransferType.FULL_REFRESH,
        window=Window(low=None, high=window.high),
        started_at=started,
        files=[],
        columns=[],
        location="s3://bkt/exports/invoices/",
    )
    assert backfill["transfer_type"] == "full_refresh"
    assert backfill["window"]["cursor_after"] is None
    assert backfill["rows"] == 0 and backfill["bytes"] == 0
