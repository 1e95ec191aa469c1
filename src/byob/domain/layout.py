"""Where every object byob writes lives. Pure functions of a connection's prefix and a transfer.

Data:      <prefix>/<model>/dt=<YYYY-MM-DD>/<file_part>_<YYYYMMDDHHMMSS>.parquet
Manifests: <prefix>/_manifests/<model>/dt=<YYYY-MM-DD>/manifest_<transfer_id>.json
Schema:    <prefix>/_schemas/<model>/schema.json (columns, types, descriptions, hashing)
Test:      <prefix>/_byob_connection_test/<random>.txt
Names starting with '_' are hidden from Hive-style readers, so byob's own objects never mix
with the data a reader scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MANIFESTS_FOLDER = "_manifests"
SCHEMAS_FOLDER = "_schemas"
CONNECTION_TEST_FOLDER = "_byob_connection_test"


def join(*parts: str) -> str:
    """Join key parts with '/', skipping empty ones (an empty base path adds nothing)."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@dataclass(frozen=True, kw_only=True)
class TransferStamp:
    """The transfer's start in UTC, which names its partition and files."""

    started_at: datetime

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")

    @property
    def utc(self) -> datetime:
        return self.started_at.astimezone(UTC)

    @property
    def date(self) -> str:
        return self.utc.strftime("%Y-%m-%d")

    @property
    def timestamp(self) -> str:
        return self.utc.strftime("%Y%m%d%H%M%S")


def model_prefix(prefix: str, model: str) -> str:
    """The folder holding every file of one model: a table's location."""
    return join(prefix, model)


def partition_prefix(prefix: str, model: str, stamp: TransferStamp) -> str:
    return join(prefix, model, f"dt={stamp.date}")


def data_key(prefix: str, model: str, stamp: TransferStamp, file_part: int) -> str:
    """The key of one data file; file_part counts from 1 within a transfer."""
    if file_part < 1:
        raise ValueError("file_part counts from 1")
    return join(partition_prefix(prefix, model, stamp), f"{file_part}_{stamp.timestamp}.parquet")


def manifest_key(prefix: str, model: str, stamp: TransferStamp, transfer_id: str) -> str:
    return join(prefix, MANIFESTS_FOLDER, model, f"dt={stamp.date}", f"manifest_{transfer_id}.json")


def schema_key(prefix: str, model: str) -> str:
    """The model's schema.json: out of the model's folder, which readers scan (a JSON file
    among the Parquet files breaks a reader that reads every file there), and out of
    ``_manifests``, where consumers list manifests."""
    return join(prefix, SCHEMAS_FOLDER, model, "schema.json")


def connection_test_key(prefix: str, token: str) -> str:
    return join(prefix, CONNECTION_TEST_FOLDER, f"{token}.txt")
