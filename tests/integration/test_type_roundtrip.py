"""Every PostgreSQL type of the aws-facts table, delivered to S3 and read back by three readers
that share nothing with byob's writer: DuckDB, pyarrow and polars.

Each delivered value is compared with what PostgreSQL itself says the value is, converted to
the delivered form the design promises: decimals exact, timestamps truncated to milliseconds
(timestamptz as the UTC instant, naive timestamp not shifted), uuid/json/time/interval/enum
as PostgreSQL's text, ±infinity dates and timestamps as NULL.
"""

from __future__ import annotations

import io
import json
import math
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from byob.demo.readback import connect_s3
from byob.errors import SchemaChangeError
from tests.support import make_services, onboard_s3, pg_exec, write_config

pytestmark = pytest.mark.integration

TENANT = "acme"
BUCKET = "bkt"
PREFIX = "exports/everything"
MODEL = {
    "name": "everything",
    "table": "everything",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}

DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'très content 😀');
CREATE TABLE everything (
    id bigint PRIMARY KEY,
    tenant_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    c_smallint smallint, c_integer integer, c_bigint bigint,
    c_num18 numeric(18,2), c_num9 numeric(9,4), c_num38 numeric(38,10), c_num50 numeric(50,4), c_numeric numeric,
    c_real real, c_double double precision, c_bool boolean,
    c_text text, c_varchar varchar(20), c_char char(3),
    c_date date, c_ts timestamp, c_tstz timestamptz, c_time time, c_interval interval,
    c_uuid uuid, c_json json, c_jsonb jsonb, c_enum mood, c_bytea bytea,
    c_int_arr integer[], c_text_arr text[]
)
"""

# Rows as SQL literals, so PostgreSQL (not a Python adapter) decides what each value is.
ROWS: dict[int, dict[str, str]] = {
    1: {},  # every nullable column NULL
    2: {  # the largest values
        "c_smallint": "32767",
        "c_integer": "2147483647",
        "c_bigint": "9223372036854775807",
        "c_num18": "9999999999999999.99",
        "c_num9": "99999.9999",
        "c_num38": "9999999999999999999999999999.9999999999",  # 38 digits
        "c_num50": "1234567890123456789012345678901234567890123456.7891",
        "c_numeric": "123456789012345678901234567890.123456789012345678901234567890",
        "c_real": "3.4028235e38",
        "c_double": "1.7976931348623157e308",
        "c_bool": "true",
        "c_text": "'日本語 text with emoji 🎉👩‍👩‍👧 and a quote '' and a \\ backslash'",
        "c_varchar": "'ü東京😀 twenty chars!'",
        "c_char": "'abc'",
        "c_date": "'9999-12-31'",
        "c_ts": "'9999-12-31 23:59:59.999999'",
        "c_tstz": "'9999-12-31 12:00:00.987654+14:00'",
        "c_time": "'23:59:59.999999'",
        "c_interval": "'178000000 years 11 mons 30 days 23:59:59.999999'",
        "c_uuid": "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        "c_json": '\'{"b": [1, 2.50, "x"],   "a": {"nested": null}}\'',
        "c_jsonb": '\'{"b": [1, 2.50, "x"],   "a": {"nested": null}}\'',
        "c_enum": "'très content 😀'",
        "c_bytea": "'\\x00ff10deadbeef00'::bytea",
        "c_int_arr": "'{2147483647,NULL,-2147483648}'",
        "c_text_arr": "ARRAY['a,b', 'quote\"d', NULL, '', '東京 😀']",
    },
    3: {  # the smallest values, and the far past
        "c_smallint": "-32768",
        "c_integer": "-2147483648",
        "c_bigint": "-9223372036854775808",
        "c_num18": "-9999999999999999.99",
        "c_num9": "-99999.9999",
        "c_num38": "-9999999999999999999999999999.9999999999",
        "c_num50": "-99999999999999999999999999999999999999999999.9999",
        "c_numeric": "0.000000000000000000000000000001",
        "c_real": "-1.17549435e-38",
        "c_double": "-2.2250738585072014e-308",
        "c_bool": "false",
        "c_text": "'Ω'",
        "c_varchar": "'a'",
        "c_char": "'ab'",  # char(3) 'ab ' pads
        "c_date": "'0001-01-01'",
        "c_ts": "'0001-01-01 00:00:00'",
        "c_tstz": "'1900-01-01 00:00:00+00'",
        "c_time": "'00:00:00'",
        "c_interval": "'-1 days -00:00:00.000001'",
        "c_uuid": "'00000000-0000-0000-0000-000000000000'",
        "c_json": "'[]'",
        "c_jsonb": "'[]'",
        "c_enum": "'sad'",
        "c_bytea": "'\\x00'::bytea",
        "c_int_arr": "'{}'",
        "c_text_arr": "'{}'",
    },
    4: {  # ordinary values with sub-millisecond digits and a non-UTC offset
        "c_smallint": "7",
        "c_integer": "-42",
        "c_bigint": "1234567890123",
        "c_num18": "12.30",
        "c_num9": "0.0001",
        "c_num38": "0.0000000001",
        "c_num50": "0.0001",
        "c_numeric": "'NaN'",
        "c_real": "0.1",
        "c_double": "0.1",
        "c_bool": "true",
        "c_text": "'e\u0301 vs é, ß, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢'",
        "c_varchar": "''",
        "c_char": "'x'",
        "c_date": "'2024-02-29'",
        "c_ts": "'2024-02-29 23:59:59.999999'",
        "c_tstz": "'2024-06-30 23:30:00.123456+05:30'",
        "c_time": "'12:34:56.789012'",
        "c_interval": "'1 year 2 mons 3 days 04:05:06.789'",
        "c_uuid": "'123E4567-E89B-12D3-A456-426614174000'",
        "c_json": "'null'",
        "c_jsonb": '\'{"z": 1, "a": "😀"}\'',
        "c_enum": "'ok'",
        "c_bytea": "''::bytea",
        "c_int_arr": "'{1,2,3}'",
        "c_text_arr": "'{NULL}'",
    },
    5: {  # ±infinity, NaN and infinities of floats
        "c_date": "'infinity'",
        "c_ts": "'-infinity'",
        "c_tstz": "'infinity'",
        "c_real": "'NaN'",
        "c_double": "'-Infinity'",
        "c_numeric": "'Infinity'",
        "c_num50": "'NaN'",
    },
}

# Sub-millisecond digits before 1970 are dropped toward the past, as after 1970.
PRE_EPOCH_ROWS: dict[int, dict[str, str]] = {
    900: {"c_ts": "'1969-12-31 23:59:59.999999'", "c_tstz": "'1969-12-31 23:59:59.999999+00'"},
    901: {"c_ts": "'1900-06-15 12:00:00.000500'", "c_tstz": "'0001-01-01 00:00:00.123456+00'"},
}

# The delivered form of each column, computed by PostgreSQL from the source rows.
EXPECTED_SQL = """
SELECT id, tenant_id, updated_at, c_smallint, c_integer, c_bigint, c_num18, c_num9, c_num38,
       c_num50::text AS c_num50, c_numeric::text AS c_numeric, c_real, c_double, c_bool,
       c_text, c_varchar, c_char::text AS c_char,
       CASE WHEN isfinite(c_date) THEN c_date END AS c_date,
       CASE WHEN isfinite(c_ts) THEN c_ts END AS c_ts,
       CASE WHEN isfinite(c_tstz) THEN c_tstz END AS c_tstz,
       c_time::text AS c_time, c_interval::text AS c_interval, c_uuid::text AS c_uuid,
       c_json::text AS c_json, c_jsonb::text AS c_jsonb, c_enum::text AS c_enum,
       c_bytea, c_int_arr, c_text_arr
FROM everything WHERE tenant_id = %s AND id <> ALL(%s) ORDER BY id
"""

EXPECTED_ARROW = {
    "id": pa.int64(),
    "tenant_id": pa.string(),
    "updated_at": pa.timestamp("ms", tz="UTC"),
    "c_smallint": pa.int16(),
    "c_integer": pa.int32(),
    "c_bigint": pa.int64(),
    "c_num18": pa.decimal128(18, 2),
    "c_num9": pa.decimal128(9, 4),
    "c_num38": pa.decimal128(38, 10),
    "c_num50": pa.string(),
    "c_numeric": pa.string(),
    "c_real": pa.float32(),
    "c_double": pa.float64(),
    "c_bool": pa.bool_(),
    "c_text": pa.string(),
    "c_varchar": pa.string(),
    "c_char": pa.string(),
    "c_date": pa.date32(),
    "c_ts": pa.timestamp("ms"),
    "c_tstz": pa.timestamp("ms", tz="UTC"),
    "c_time": pa.string(),
    "c_interval": pa.string(),
    "c_uuid": pa.string(),
    "c_json": pa.string(),
    "c_jsonb": pa.string(),
    "c_enum": pa.string(),
    "c_bytea": pa.binary(),
    "c_int_arr": pa.list_(pa.int32()),
    "c_text_arr": pa.list_(pa.string()),
}


# -- helpers -----------------------------------------------------------------------------------


def insert_rows(url: str, rows: dict[int, dict[str, str]], tenant: str = TENANT) -> None:
    statements = []
    for row_id, values in rows.items():
        cols = ", ".join(["id", "tenant_id", *values])
        vals = ", ".join([str(row_id), f"'{tenant}'", *values.values()])
        statements.append(f"INSERT INTO everything ({cols}) VALUES ({vals})")
    pg_exec(url, *statements)


def truncate_ms(value: datetime | None) -> datetime | None:
    """The millisecond a timestamp falls in (floor, as date_trunc('milliseconds') does)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def expected_rows(url: str, tenant: str = TENANT) -> dict[int, dict[str, Any]]:
    with psycopg.connect(url) as db, db.cursor() as cur:
        cur.execute(EXPECTED_SQL, (tenant, list(PRE_EPOCH_ROWS)))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        for name in ("updated_at", "c_ts", "c_tstz"):
            row[name] = truncate_ms(row[name])
        if row["c_real"] is not None:  # psycopg parses real's text as a double
            row["c_real"] = struct.unpack("f", struct.pack("f", row["c_real"]))[0]
    return {row["id"]: row for row in rows}


def normalise(value: Any) -> Any:
    """One comparable form across readers: aware datetimes in UTC, bytes, lists."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def same(delivered: Any, expected: Any) -> bool:
    delivered, expected = normalise(delivered), normalise(expected)
    if isinstance(delivered, float) and isinstance(expected, float):
        return (math.isnan(delivered) and math.isnan(expected)) or delivered == expected
    if isinstance(delivered, Decimal) and isinstance(expected, Decimal):
        # Exact: same number and the declared scale.
        return (
            delivered == expected and delivered.as_tuple().exponent == expected.as_tuple().exponent
        )
    if isinstance(delivered, datetime) and isinstance(expected, datetime):
        # Naive must stay naive (not shifted), aware must stay aware (the same instant).
        return (delivered.tzinfo is None) == (expected.tzinfo is None) and delivered == expected
    return type(delivered) is type(expected) and delivered == expected


def assert_rows_match(
    reader: str, got: list[dict[str, Any]], want: dict[int, dict[str, Any]]
) -> None:
    got = [r for r in got if r["id"] not in PRE_EPOCH_ROWS]
    ids = [r["id"] for r in got]
    assert sorted(ids) == sorted(want), f"{reader}: delivered ids {sorted(ids)}"
    mismatches = [
        f"{reader}: id {r['id']} {col}: delivered {r[col]!r}, PostgreSQL says {want[r['id']][col]!r}"
        for r in got
        for col in want[r["id"]]
        if not same(r[col], want[r["id"]][col])
    ]
    assert not mismatches, "\n".join(mismatches)


def read_duckdb(aws: Any, customer: Any) -> list[dict[str, Any]]:
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    cur = con.execute(
        f"SELECT * FROM read_parquet('s3://{BUCKET}/{PREFIX}/*/*.parquet', hive_partitioning = true)"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def s3_filesystem(aws: Any, customer: Any) -> pafs.S3FileSystem:
    creds = customer.credentials()
    return pafs.S3FileSystem(
        endpoint_override=urlparse(aws.endpoint_url).netloc,
        scheme="http",
        access_key=creds["key"],
        secret_key=creds["secret"],
        session_token=creds["token"],
        region="us-east-1",
    )


def read_pyarrow(aws: Any, customer: Any) -> pa.Table:
    dataset = ds.dataset(
        f"{BUCKET}/{PREFIX}",
        filesystem=s3_filesystem(aws, customer),
        format="parquet",
        partitioning="hive",
    )
    return dataset.to_table()


def read_polars(aws: Any, customer: Any) -> pl.DataFrame:
    creds = customer.credentials()
    options = {
        "aws_endpoint_url": aws.endpoint_url,
        "aws_access_key_id": creds["key"],
        "aws_secret_access_key": creds["secret"],
        "aws_session_token": creds["token"],
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    return pl.read_parquet(
        f"s3://{BUCKET}/{PREFIX}/**/*.parquet", storage_options=options, hive_partitioning=True
    )


def data_keys(customer: Any) -> list[str]:
    return sorted(o["Key"] for o in customer.keys(BUCKET, PREFIX + "/"))


def download(customer: Any, key: str) -> bytes:
    return customer.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()


# -- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    aws: Any
    customer: Any
    results: list[Any]
    url: str
    expected: dict[int, dict[str, Any]]


@pytest.fixture(scope="module")
def delivered(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str, _aws_server: Any
) -> Iterator[Delivered]:
    """Three transfers: the typed rows, then a file of NULLs only, then bulk rows. The source
    database runs in a non-UTC time zone. Built once for the module: the tests only read."""
    aws = _aws_server
    aws.reset()
    aws.enforce_iam(False)
    tmp_path = tmp_path_factory.mktemp("types")
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_exec(pg_server_url, f'CREATE DATABASE "{name}"')
    url = f"{pg_server_url.rsplit('/', 1)[0]}/{name}"
    try:
        pg_exec(url, f"ALTER DATABASE \"{name}\" SET TimeZone = 'America/St_Johns'", DDL)
        insert_rows(url, ROWS | PRE_EPOCH_ROWS)
        insert_rows(url, {99: dict(ROWS[2])}, tenant="globex")  # another tenant's row
        app = make_services(tmp_path, write_config(tmp_path / "byob.toml", url, [MODEL]), aws)
        conn, customer = onboard_s3(app, aws, bucket=BUCKET)
        results = app.transfers.run(conn.name)
        insert_rows(url, {6: {}, 7: {}})
        results += app.transfers.run(conn.name)
        pg_exec(
            url,
            "INSERT INTO everything (id, tenant_id, c_text, c_bigint, c_tstz) "
            "SELECT 1000 + i, 'acme', md5(i::text), i, now() - i * interval '1.001 ms' "
            "FROM generate_series(1, 2000) i",
        )
        results += app.transfers.run(conn.name)
        yield Delivered(
            aws=aws, customer=customer, results=results, url=url, expected=expected_rows(url)
        )
        app.adapters.close()
    finally:
        pg_exec(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- tests -------------------------------------------------------------------------------------


def test_transfers_deliver_only_the_tenants_rows(delivered: Delivered) -> None:
    assert [r.record.status for r in delivered.results] == ["succeeded"] * 3
    assert [r.record.rows for r in delivered.results] == [len(ROWS) + len(PRE_EPOCH_ROWS), 2, 2000]
    keys = data_keys(delivered.customer)
    assert len(keys) == sum(r.record.files for r in delivered.results) == 3, keys
    assert 99 not in delivered.expected and len(delivered.expected) == len(ROWS) + 2 + 2000


def test_duckdb_reads_every_value_as_postgres_has_it(delivered: Delivered) -> None:
    got = read_duckdb(delivered.aws, delivered.customer)
    assert_rows_match("duckdb", got, delivered.expected)
    days = {r.record.started_at.astimezone(UTC).date() for r in delivered.results}
    assert {r["dt"] for r in got} == days  # the hive partition column is the transfer date


def test_duckdb_sees_the_declared_sql_types(delivered: Delivered) -> None:
    con = connect_s3(delivered.aws.endpoint_url, **delivered.customer.credentials())
    described = con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('s3://{BUCKET}/{PREFIX}/*/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    types = {row[0]: row[1] for row in described}
    assert types == {
        "id": "BIGINT",
        "tenant_id": "VARCHAR",
        "updated_at": "TIMESTAMP WITH TIME ZONE",
        "c_smallint": "SMALLINT",
        "c_integer": "INTEGER",
        "c_bigint": "BIGINT",
        "c_num18": "DECIMAL(18,2)",
        "c_num9": "DECIMAL(9,4)",
        "c_num38": "DECIMAL(38,10)",
        "c_num50": "VARCHAR",
        "c_numeric": "VARCHAR",
        "c_real": "FLOAT",
        "c_double": "DOUBLE",
        "c_bool": "BOOLEAN",
        "c_text": "VARCHAR",
        "c_varchar": "VARCHAR",
        "c_char": "VARCHAR",
        "c_date": "DATE",
        "c_ts": "TIMESTAMP",
        "c_tstz": "TIMESTAMP WITH TIME ZONE",
        "c_time": "VARCHAR",
        "c_interval": "VARCHAR",
        "c_uuid": "VARCHAR",
        "c_json": "VARCHAR",
        "c_jsonb": "VARCHAR",
        "c_enum": "VARCHAR",
        "c_bytea": "BLOB",
        "c_int_arr": "INTEGER[]",
        "c_text_arr": "VARCHAR[]",
        "dt": "DATE",
    }


def test_pyarrow_reads_every_value_as_postgres_has_it(delivered: Delivered) -> None:
    table = read_pyarrow(delivered.aws, delivered.customer)
    assert_rows_match("pyarrow", table.to_pylist(), delivered.expected)
    assert set(table.column("dt").to_pylist()) == {
        r.record.started_at.astimezone(UTC).strftime("%Y-%m-%d") for r in delivered.results
    }


def test_polars_reads_every_value_as_postgres_has_it(delivered: Delivered) -> None:
    frame = read_polars(delivered.aws, delivered.customer)
    assert_rows_match("polars", frame.to_dicts(), delivered.expected)


def test_polars_reads_bytes_downloaded_with_boto3(delivered: Delivered) -> None:
    """The same files, fetched by the customer's own SDK and parsed by polars from memory."""
    frames = [
        pl.read_parquet(io.BytesIO(download(delivered.customer, key)))
        for key in data_keys(delivered.customer)
    ]
    assert_rows_match("polars/bytes", pl.concat(frames).to_dicts(), delivered.expected)


def test_spot_values_independent_of_postgres(delivered: Delivered) -> None:
    """A few values spelled out, so a shared mistake in the expected query cannot hide."""
    rows = {r["id"]: r for r in read_pyarrow(delivered.aws, delivered.customer).to_pylist()}
    assert rows[2]["c_bigint"] == 2**63 - 1 and rows[3]["c_bigint"] == -(2**63)
    assert rows[2]["c_num38"] == Decimal("9999999999999999999999999999.9999999999")
    assert rows[2]["c_num50"] == "1234567890123456789012345678901234567890123456.7891"
    assert rows[4]["c_num18"] == Decimal("12.30") and rows[4]["c_numeric"] == "NaN"
    assert rows[2]["c_num9"] == Decimal("99999.9999") and rows[4]["c_num9"] == Decimal("0.0001")
    assert rows[5]["c_numeric"] == "Infinity"
    # +05:30 is converted to the UTC instant; the naive timestamp is not shifted.
    assert rows[4]["c_tstz"] == datetime(2024, 6, 30, 18, 0, 0, 123000, tzinfo=UTC)
    assert rows[4]["c_ts"] == datetime(2024, 2, 29, 23, 59, 59, 999000)
    assert rows[2]["c_tstz"] == datetime(9999, 12, 30, 22, 0, 0, 987000, tzinfo=UTC)
    assert rows[3]["c_date"] == date(1, 1, 1) and rows[3]["c_ts"] == datetime(1, 1, 1)
    assert rows[5]["c_date"] is None and rows[5]["c_ts"] is None and rows[5]["c_tstz"] is None
    assert math.isnan(rows[5]["c_real"]) and rows[5]["c_double"] == -math.inf
    assert rows[4]["c_uuid"] == "123e4567-e89b-12d3-a456-426614174000"
    assert rows[4]["c_interval"] == "1 year 2 mons 3 days 04:05:06.789"
    assert rows[4]["c_time"] == "12:34:56.789012"  # time is text: no truncation
    assert json.loads(rows[2]["c_json"]) == {"b": [1, 2.5, "x"], "a": {"nested": None}}
    assert rows[2]["c_json"].startswith('{"b"')  # json keeps the source text as is
    assert rows[4]["c_json"] == "null" and rows[1]["c_json"] is None  # JSON null is not NULL
    assert rows[2]["c_bytea"] == bytes.fromhex("00ff10deadbeef00") and rows[4]["c_bytea"] == b""
    assert rows[2]["c_int_arr"] == [2147483647, None, -2147483648]
    assert rows[2]["c_text_arr"] == ["a,b", 'quote"d', None, "", "東京 😀"]
    assert rows[3]["c_int_arr"] == [] and rows[1]["c_int_arr"] is None
    assert rows[2]["c_enum"] == "très content 😀" and rows[3]["c_char"] == "ab"
    assert rows[2]["c_text"] == "日本語 text with emoji 🎉👩‍👩‍👧 and a quote ' and a \\ backslash"
    assert rows[4]["c_text"] == "e\u0301 vs é, ß, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"  # not normalised


def test_parquet_physical_schema(delivered: Delivered) -> None:
    schemas = []
    for key in data_keys(delivered.customer):
        meta = pq.ParquetFile(io.BytesIO(download(delivered.customer, key)))
        schemas.append(meta.schema_arrow)
        columns = {
            meta.schema.column(i).path: meta.schema.column(i)
            for i in range(meta.metadata.num_columns)
        }
        assert all(c.physical_type != "INT96" for c in columns.values()), key
        for name, utc in (("updated_at", True), ("c_ts", False), ("c_tstz", True)):
            logical = json.loads(columns[name].logical_type.to_json())
            assert columns[name].physical_type == "INT64", (key, name)
            assert logical["Type"] == "Timestamp" and logical["timeUnit"] == "milliseconds", logical
            assert logical["isAdjustedToUTC"] is utc, (key, name, logical)
        for name, (precision, scale) in (
            ("c_num18", (18, 2)),
            ("c_num9", (9, 4)),
            ("c_num38", (38, 10)),
        ):
            logical = json.loads(columns[name].logical_type.to_json())
            assert logical == {"Type": "Decimal", "precision": precision, "scale": scale}, logical
        assert columns["c_date"].logical_type.type == "DATE"
        assert columns["c_num50"].logical_type.type == "STRING"
        assert columns["c_bytea"].physical_type == "BYTE_ARRAY"
        assert "c_int_arr.list.element" in columns  # the compliant nested list layout
    assert len(schemas) == 3  # including the file holding only NULLs
    for schema in schemas[1:]:
        assert schema.equals(schemas[0]), f"{schema}\n!=\n{schemas[0]}"
    assert schemas[0].names == list(EXPECTED_ARROW)
    for name, arrow_type in EXPECTED_ARROW.items():
        field = schemas[0].field(name)
        if pa.types.is_list(arrow_type):
            assert pa.types.is_list(field.type) and field.type.value_type == arrow_type.value_type
        else:
            assert field.type == arrow_type, name


def test_timestamps_before_1970_are_truncated_to_the_millisecond(delivered: Delivered) -> None:
    rows = {r["id"]: r for r in read_pyarrow(delivered.aws, delivered.customer).to_pylist()}
    assert [rows[i]["c_ts"] for i in PRE_EPOCH_ROWS] == [
        datetime(1969, 12, 31, 23, 59, 59, 999000),
        datetime(1900, 6, 15, 12, 0, 0, 0),
    ]
    assert [rows[i]["c_tstz"] for i in PRE_EPOCH_ROWS] == [
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
    ]


def test_nan_in_a_constrained_numeric_fails_the_transfer_instead_of_writing_null(
    tmp_path: Path, pg_url: str, aws: Any
) -> None:
    """PostgreSQL accepts NaN in numeric(18,2); decimal(18,2) cannot hold it: refuse loudly.
    (Runs last in the module: the `aws` fixture wipes the emulator the module fixture filled.)"""
    pg_exec(
        pg_url,
        "CREATE TABLE prices (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "amount numeric(18,2), updated_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO prices (id, tenant_id, amount) VALUES (1, 'acme', 1.5), (2, 'acme', 'NaN')",
    )
    model = dict(MODEL, name="prices", table="prices")
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", pg_url, [model]), aws)
    conn, customer = onboard_s3(app, aws, bucket=BUCKET)
    with pytest.raises(SchemaChangeError) as caught:
        app.transfers.run(conn.name)
    assert "'amount'" in caught.value.message and "decimal(18,2)" in caught.value.message
    assert customer.keys(BUCKET, "exports/prices/") == []
    assert app.adapters.state.transfers.history(conn.id)[0].status == "failed"
    assert app.adapters.state.transfers.model_state(conn.id, "prices").high_water_mark is None
