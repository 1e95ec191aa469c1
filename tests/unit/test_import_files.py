"""Reading import files (CSV, JSON Lines, Parquet) into typed batches, and refusing bad ones."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import math
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byob.domain.imports import ImportFormat, ImportSpec, RowProblem, import_column
from byob.engine.import_files import read_import_file
from byob.engine.import_values import import_schema
from byob.errors import FileRejectedError

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")
COLUMNS = {"account": "text", "quantity": "numeric(18,6)", "occurred_at": "timestamptz"}


def make_spec(fmt: str = "csv", columns: dict[str, str] | None = None, **extra: Any) -> ImportSpec:
    return ImportSpec(
        name="usage_events",
        table="public.usage_events",
        tenant_column="tenant_id",
        format=ImportFormat(fmt),
        columns=tuple(import_column(k, v) for k, v in (columns or COLUMNS).items()),
        **extra,
    )


def read(data: bytes, spec: ImportSpec | None = None, **options: Any) -> list[dict[str, Any]]:
    spec = spec or make_spec()
    batches = list(read_import_file(io.BytesIO(data), spec, **options))
    for batch in batches:
        assert batch.schema == import_schema(spec)
    return [row for batch in batches for row in batch.to_pylist()]


def problems(data: bytes, spec: ImportSpec | None = None, **options: Any) -> tuple[RowProblem, ...]:
    with pytest.raises(FileRejectedError) as info:
        read(data, spec, **options)
    return info.value.problems


def when(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, 31, hour, minute, tzinfo=UTC)


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_rows_are_typed_and_the_tenant_column_is_ignored() -> None:
    data = (
        b"tenant_id,account,quantity,occurred_at,extra\n"
        b"someone-else,acme,1.5,2024-01-31T12:00:00Z,x\n"
        b"another,beta,-2,2024-01-31 13:30:00+00:00,y\n"
    )
    assert read(data) == [
        {"account": "acme", "quantity": Decimal("1.500000"), "occurred_at": when(12)},
        {"account": "beta", "quantity": Decimal("-2.000000"), "occurred_at": when(13, 30)},
    ]


def test_schema_types() -> None:
    spec = make_spec(
        columns={
            "a": "numeric(18,6)",
            "b": "timestamptz",
            "c": "timestamp",
            "d": "jsonb",
            "e": "uuid",
            "f": "integer",
            "g": "bigint",
            "h": "double precision",
            "i": "boolean",
            "j": "date",
        }
    )
    assert import_schema(spec) == pa.schema(
        [
            ("a", pa.decimal128(18, 6)),
            ("b", pa.timestamp("us", tz="UTC")),
            ("c", pa.timestamp("us")),
            ("d", pa.string()),
            ("e", pa.string()),
            ("f", pa.int32()),
            ("g", pa.int64()),
            ("h", pa.float64()),
            ("i", pa.bool_()),
            ("j", pa.date32()),
        ]
    )


def test_csv_gzip() -> None:
    data = gzip.compress(b"account,quantity,occurred_at\nacme,1,2024-01-31T12:00:00Z\n")
    assert read(data, gzip=True) == [
        {"account": "acme", "quantity": Decimal(1), "occurred_at": when(12)}
    ]


def test_csv_quoted_fields_with_newlines_delimiters_and_quotes() -> None:
    data = (
        b'account,quantity,occurred_at\r\n"a, ""b""\r\nc",1,2024-01-31T12:00:00Z\r\n'
        b'"x\ny",2,2024-01-31T12:00:00Z\r\n'
    )
    assert [r["account"] for r in read(data)] == ['a, "b"\r\nc', "x\ny"]


def test_csv_bom_is_stripped() -> None:
    data = "\ufeffaccount,quantity,occurred_at\nacmé,1,2024-01-31T12:00:00Z\n".encode()
    assert read(data)[0]["account"] == "acmé"


@pytest.mark.parametrize(
    "data",
    [b"", b"\xef\xbb\xbf", b"account,quantity,occurred_at\n", b"account,quantity,occurred_at"],
)
def test_csv_empty_and_header_only_files_have_no_rows(data: bytes) -> None:
    assert read(data) == []
    assert read(gzip.compress(data), gzip=True) == []


def test_csv_without_header_is_positional_and_takes_a_delimiter() -> None:
    spec = make_spec(csv_header=False, csv_delimiter=";")
    data = b"acme;1,5;2024-01-31T12:00:00Z\n"
    with pytest.raises(FileRejectedError):
        read(data, spec)  # 1,5 is no number
    assert read(b"acme;1.5;2024-01-31T12:00:00Z\n\n", spec) == [
        {"account": "acme", "quantity": Decimal("1.5"), "occurred_at": when(12)}
    ]


def test_csv_empty_fields_are_null() -> None:
    data = b"account,quantity,occurred_at\n,,\n"
    assert read(data) == [{"account": None, "quantity": None, "occurred_at": None}]


def test_csv_header_missing_a_declared_column() -> None:
    (problem,) = problems(b"account,occurred_at\nacme,2024-01-31T12:00:00Z\n")
    assert problem.line == 1
    assert "the header lacks column(s) 'quantity'" in problem.reason
    assert "it has: account, occurred_at" in problem.reason


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("quantity", "abc", "not a numeric(18,6): expected a number"),
        ("quantity", "1.0000001", "more than 6 digits after the point"),
        ("quantity", "12345678901234", "too many digits for numeric(18,6)"),
        ("occurred_at", "yesterday", "not a timestamp"),
        ("occurred_at", "2024-01-31 12:00:00", "no zone offset"),
        ("occurred_at", "2024-02-30T12:00:00Z", "not a timestamp"),
    ],
)
def test_csv_bad_value_names_line_column_value_reason(column: str, value: str, says: str) -> None:
    good = {"account": "acme", "quantity": "1", "occurred_at": "2024-01-31T12:00:00Z"}
    bad = {**good, column: value}
    data = (
        "account,quantity,occurred_at\n"
        '"multi\nline",1,2024-01-31T12:00:00Z\n'  # lines 2-3
        f"{bad['account']},{bad['quantity']},{bad['occurred_at']}\n"  # line 4
    ).encode()
    (problem,) = problems(data)
    assert (problem.line, problem.column, problem.value) == (4, column, value)
    assert says in problem.reason


@pytest.mark.parametrize(
    ("declared", "value", "says"),
    [
        ("integer", "1.5", "not a integer"),
        ("integer", "99999999999", "within its range"),
        ("date", "31/01/2024", "not a date: expected YYYY-MM-DD"),
        ("timestamp", "2024-01-31T12:00:00Z", "has a zone offset"),
        ("boolean", "maybe", "not a boolean"),
        ("uuid", "not-a-uuid", "not a UUID"),
        ("jsonb", "{bad", "not JSON"),
        ("jsonb", "NaN", "not JSON"),
        ("varchar(3)", "abcd", "longer than the 3 characters of varchar(3)"),
        ("text", "a\x00b", "NUL character"),
    ],
)
def test_csv_bad_values_of_other_types(declared: str, value: str, says: str) -> None:
    spec = make_spec(columns={"v": declared})
    (problem,) = problems(f"v\n{value}\n".encode(), spec)
    assert (problem.line, problem.column, problem.value) == (2, "v", value)
    assert says in problem.reason


def test_csv_other_types_convert() -> None:
    spec = make_spec(
        columns={
            "i": "integer",
            "b": "boolean",
            "d": "date",
            "t": "timestamp",
            "u": "uuid",
            "j": "jsonb",
            "f": "double precision",
        }
    )
    data = (
        b"i,b,d,t,u,j,f\n"
        b" 7 ,YES,2024-01-31,2024-01-31 12:00:00.5,ABCDEF01-2345-6789-ABCD-EF0123456789,"
        b'"{""a"": [1, 2.5]}",1e3\n'
    )
    assert read(data, spec) == [
        {
            "i": 7,
            "b": True,
            "d": dt.date(2024, 1, 31),
            "t": dt.datetime(2024, 1, 31, 12, 0, 0, 500000),
            "u": "abcdef01-2345-6789-abcd-ef0123456789",
            "j": '{"a": [1, 2.5]}',
            "f": 1000.0,
        }
    ]


def test_csv_reports_the_first_errors_of_the_file() -> None:
    rows = "".join(f"acme,x{n},2024-01-31T12:00:00Z\n" for n in range(10))
    found = problems(f"account,quantity,occurred_at\n{rows}".encode())
    assert [p.line for p in found] == [2, 3, 4, 5, 6]
    assert found[0].value == "x0"


def test_csv_errors_in_a_later_batch_count_lines_across_batches() -> None:
    rows = ['"a\nb",1,2024-01-31T12:00:00Z\n'] * 5 + ["acme,bad,2024-01-31T12:00:00Z\n"]
    data = ("account,quantity,occurred_at\n" + "".join(rows)).encode()
    (problem,) = problems(data, batch_rows=2)
    assert problem.line == 12  # header, then five records of two lines each


# Plain lines (no quotes) are split by Arrow a block at a time; the csv module takes over at the
# first block it cannot read as the csv module would, or that holds a bad value. These files span
# many blocks (batch_bytes=1 KiB) so that the hand-over happens part-way.
PLAIN_ROW = "acct-{n},{n}.5,2024-01-31T12:00:00Z\n"


def plain_rows(count: int, start: int = 0) -> str:
    return "".join(PLAIN_ROW.format(n=n) for n in range(start, start + count))


@pytest.mark.parametrize("gzipped", [False, True])
def test_csv_plain_lines_read_the_same_by_arrow_and_by_the_csv_module(
    gzipped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = plain_rows(300).replace("acct-7,", "NA,").replace("acct-8,", "null,")
    body = body.replace("acct-9,", ",")  # an empty field: NULL, but "NA" and "null" are text
    data = ("account,quantity,occurred_at\r\n" + body.replace("\n", "\r\n")).encode()
    quoted = data.replace(b"acct-0,", b'"acct-0",', 1)  # a quote: the csv module reads it all
    options: dict[str, Any] = {"gzip": True} if gzipped else {}
    pack = gzip.compress if gzipped else bytes
    with monkeypatch.context() as patched:
        patched.setattr(csv, "reader", None)  # not called: Arrow reads plain lines
        by_arrow = read(pack(data), batch_bytes=1024, **options)
    assert by_arrow == read(pack(quoted), batch_bytes=1024, **options)
    assert len(by_arrow) == 300
    assert [r["account"] for r in by_arrow[6:10]] == ["acct-6", "NA", "null", None]
    assert by_arrow[299] == {
        "account": "acct-299",
        "quantity": Decimal("299.5"),
        "occurred_at": when(12),
    }


@pytest.mark.parametrize(
    ("bad_row", "line", "reason"),
    [
        ("acme,x,2024-01-31T12:00:00Z\n", 252, "not a numeric(18,6)"),
        ("acme,1\n", 252, "expected 3 fields, found 2"),
        ('"a\nb",1,2024-01-31T12:00:00Z\nacme,x,2024-01-31T12:00:00Z\n', 254, "not a numeric"),
    ],
)
def test_csv_a_problem_after_many_plain_blocks_names_its_line(
    bad_row: str, line: int, reason: str
) -> None:
    blank_lines = "\n\n"  # physical lines, skipped as rows
    body = plain_rows(100) + blank_lines + plain_rows(148, 100) + bad_row + plain_rows(50, 248)
    data = ("account,quantity,occurred_at\n" + body).encode()
    (problem,) = problems(data, batch_bytes=1024)
    assert (problem.line, problem.reason.startswith(reason)) == (line, True)


def test_csv_a_quote_part_way_hands_the_rest_to_the_csv_module() -> None:
    body = plain_rows(200) + '"multi\nline, quoted",7,2024-01-31T12:00:00Z\n' + plain_rows(5, 201)
    rows = read(("account,quantity,occurred_at\n" + body).encode(), batch_bytes=1024)
    assert [r["account"] for r in rows[199:202]] == ["acct-199", "multi\nline, quoted", "acct-201"]
    assert len(rows) == 206


def test_csv_a_delimiter_of_more_than_one_byte_is_left_to_the_csv_module() -> None:
    spec = make_spec(csv_delimiter="§")
    data = "account§quantity§occurred_at\nacme§1.5§2024-01-31T12:00:00Z\n".encode()
    assert read(data, spec) == [
        {"account": "acme", "quantity": Decimal("1.5"), "occurred_at": when(12)}
    ]


def test_csv_bad_utf8_in_a_column_not_imported_is_refused_as_before() -> None:
    data = b"account,quantity,occurred_at,note\n" + b"acme,1,2024-01-31T12:00:00Z,\xff\n" * 3
    (problem,) = problems(data)
    assert "not UTF-8" in problem.reason


def test_csv_a_lone_carriage_return_ends_a_line_as_the_csv_module_says() -> None:
    data = (
        b"account,quantity,occurred_at\racme,1,2024-01-31T12:00:00Z\racme,x,2024-01-31T12:00:00Z\r"
    )
    (problem,) = problems(data)
    assert (problem.line, problem.value) == (3, "x")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_batches_end_by_bytes_as_well_as_rows(fmt: str) -> None:
    """Wide rows make short batches: a batch's memory follows the file's bytes, not a row
    count (65,536 rows of a few KB each would be hundreds of MB on the way to COPY)."""
    accounts = [f"a{i}-" + "x" * 1000 for i in range(300)]
    quantities, at = [str(i) for i in range(300)], "2024-01-31T12:00:00Z"
    if fmt == "csv":
        data = (
            b"account,quantity,occurred_at\n"
            + "".join(f"{a},{q},{at}\n" for a, q in zip(accounts, quantities, strict=True)).encode()
        )
    elif fmt == "jsonl":
        data = "".join(
            f'{{"account":"{a}","quantity":{q},"occurred_at":"{at}"}}\n'
            for a, q in zip(accounts, quantities, strict=True)
        ).encode()
    else:
        table = pa.table({"account": accounts, "quantity": quantities, "occurred_at": [at] * 300})
        data = parquet(table)
    spec = make_spec(fmt)
    batches = list(read_import_file(io.BytesIO(data), spec, batch_bytes=32 << 10))
    assert sum(b.num_rows for b in batches) == 300
    assert len(batches) >= 6 and max(b.num_rows for b in batches) <= 64
    assert [r["account"] for b in batches for r in b.to_pylist()] == accounts


def test_csv_wrong_number_of_fields() -> None:
    data = b"account,quantity,occurred_at\nacme,1\n"
    (problem,) = problems(data)
    assert (problem.line, problem.reason) == (2, "expected 3 fields, found 2")


def test_csv_unclosed_quote_is_refused() -> None:
    (problem,) = problems(b'account,quantity,occurred_at\n"acme,1,2024-01-31T12:00:00Z\n')
    assert "not CSV" in problem.reason


def test_a_line_over_the_limit_is_refused_without_reading_it_whole() -> None:
    long_line = b"x" * (1024**2 + 10)
    data = b"account,quantity,occurred_at\nacme,1,2024-01-31T12:00:00Z\n" + long_line + b"\n"
    (problem,) = problems(data)
    assert problem.line == 3
    assert "longer than 1048576 bytes" in problem.reason
    assert problems(gzip.compress(data), gzip=True)[0].line == 3


def test_a_line_at_the_limit_is_read() -> None:
    value = "x" * (100 - len(",1,2024-01-31T12:00:00Z"))
    data = f"account,quantity,occurred_at\r\n{value},1,2024-01-31T12:00:00Z\r\n".encode()
    assert read(data, max_line_bytes=100)[0]["account"] == value
    (problem,) = problems(data.replace(b"xx", b"xxx", 1), max_line_bytes=100)
    assert problem.line == 2


def test_not_utf8_is_refused() -> None:
    (problem,) = problems(b"account,quantity,occurred_at\n\xff\xfe,1,2024-01-31T12:00:00Z\n")
    assert "not UTF-8" in problem.reason


def test_broken_gzip_is_refused() -> None:
    data = gzip.compress(b"account,quantity,occurred_at\n" * 1000)
    (problem,) = problems(data[: len(data) // 2], gzip=True)
    assert "not a complete gzip file" in problem.reason


def test_an_oversized_file_is_refused_before_reading() -> None:
    spec = make_spec(max_file_bytes=10)
    (problem,) = problems(b"account,quantity,occurred_at\n", spec, size=11)
    assert "above this import's max_file_bytes (10)" in problem.reason


def test_the_callers_stream_stays_open() -> None:
    stream = io.BytesIO(b"account,quantity,occurred_at\nacme,1,2024-01-31T12:00:00Z\n")
    assert len(list(read_import_file(stream, make_spec()))) == 1
    assert not stream.closed


# --- JSON Lines --------------------------------------------------------------------------------


def test_jsonl_missing_keys_are_null_and_the_tenant_is_ignored() -> None:
    data = (
        b'{"tenant_id": "other", "account": "acme", "quantity": 1.25, '
        b'"occurred_at": "2024-01-31T12:00:00Z", "extra": [1]}\n'
        b"\n"
        b'{"account": "beta", "quantity": null}\n'
        b'{"quantity": "12345678901.123456"}\n'
    )
    assert read(data, make_spec("jsonl")) == [
        {"account": "acme", "quantity": Decimal("1.25"), "occurred_at": when(12)},
        {"account": "beta", "quantity": None, "occurred_at": None},
        {"account": None, "quantity": Decimal("12345678901.123456"), "occurred_at": None},
    ]


def test_jsonl_gzip_and_bom() -> None:
    data = gzip.compress('\ufeff{"account": "acmé"}\n'.encode())
    assert read(data, make_spec("jsonl"), gzip=True)[0]["account"] == "acmé"


@pytest.mark.parametrize(
    ("line", "column", "says"),
    [
        ('{"account": 5}', "account", "expected a string, found a number"),
        ('{"quantity": true}', "quantity", "expected a number, found a boolean"),
        ('{"quantity": "abc"}', "quantity", "not a numeric(18,6)"),
        ('{"quantity": 1.0000001}', "quantity", "more than 6 digits after the point"),
        ('{"occurred_at": "2024-01-31"}', "occurred_at", "no zone offset"),
        ('{"occurred_at": {"at": 1}}', "occurred_at", "expected a string, found an object"),
        ('{"account": "a"', None, "not JSON"),
        ("[1, 2]", None, "each line must be a JSON object"),
        ('{"quantity": NaN}', None, "not JSON"),
    ],
)
def test_jsonl_bad_types(line: str, column: str | None, says: str) -> None:
    data = f'{{"account": "ok"}}\n\n{line}\n'.encode()
    (problem,) = problems(data, make_spec("jsonl"))
    assert (problem.line, problem.column) == (3, column)
    assert says in problem.reason


def test_jsonl_json_columns_keep_any_json_value() -> None:
    spec = make_spec("jsonl", columns={"payload": "jsonb", "ok": "boolean", "n": "bigint"})
    data = b'{"payload": {"a": [1, 2.5, null]}, "ok": false, "n": 9007199254740993}\n'
    assert read(data, spec) == [
        {"payload": '{"a":[1,2.5,null]}', "ok": False, "n": 9007199254740993}
    ]


@pytest.mark.parametrize("declared", ["json", "jsonb"])
def test_jsonl_json_columns_keep_numbers_as_written(declared: str) -> None:
    """PostgreSQL keeps every digit (jsonb) or the very text (json); a float would round them."""
    spec = make_spec("jsonl", columns={"p": declared})
    data = (
        b'{"p": {"amount": 12345678901234567.89, "x": 0.10000000000000000001}}\n'
        b'{"p": [1e400, -0, 1E+2]}\n'
    )
    assert read(data, spec) == [
        {"p": '{"amount":12345678901234567.89,"x":0.10000000000000000001}'},
        {"p": "[1e400,-0,1E+2]"},
    ]


@pytest.mark.parametrize("depth", [600, 5000])
def test_a_jsonl_line_nested_too_deeply_rejects_the_file_naming_the_line(depth: int) -> None:
    """Python's JSON decoder (and the writing back of a json value) recurse: a line nested
    deeper than they go is refused like any line that cannot be read, never a crash."""
    spec = make_spec("jsonl", columns={"p": "jsonb"})
    data = b'{"p": 1}\n{"p": ' + b"[" * depth + b"]" * depth + b"}\n"
    (problem,) = problems(data, spec)
    assert problem.line == 2 and "nested too deeply" in problem.reason


@pytest.mark.parametrize(
    ("declared", "value", "says"),
    [
        ("double precision", "1e400", "out of range for double precision"),
        ("double precision", "-1e400", "to 1.8e308"),
        ("double precision", "1e-400", "from about 4.9e-324"),
        ("real", "3.5e39", "out of range for real: magnitudes from about 1.4e-45 to 3.4e38"),
        ("real", "1e-50", "out of range for real"),
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_float_beyond_its_type_is_refused_not_made_infinite_or_zero(
    fmt: str, declared: str, value: str, says: str
) -> None:
    """PostgreSQL refuses these numbers as out of range; Arrow would make them ±inf or 0."""
    spec = make_spec(fmt, columns={"v": declared})
    data = f"v\n1\n{value}\n" if fmt == "csv" else f'{{"v": 1}}\n{{"v": {value}}}\n'
    (problem,) = problems(data.encode(), spec)
    assert (problem.line, problem.column, problem.value) == (3 if fmt == "csv" else 2, "v", value)
    assert says in problem.reason


def test_floats_at_their_limits_and_spelled_infinities_are_read() -> None:
    spec = make_spec(columns={"r": "real", "d": "double precision"})
    data = b"r,d\n3.4028235e38,-Infinity\n1e-40,inf\n-0e-999,NaN\n-nan,4.9e-324\n"
    reals = [row["r"] for row in read(data, spec)]
    doubles = [row["d"] for row in read(data, spec)]
    assert reals[:3] == pytest.approx([3.4028235e38, 1e-40, 0.0]) and math.isnan(reals[3])
    assert doubles[:2] == [-math.inf, math.inf] and math.isnan(doubles[2])
    assert doubles[3] == 5e-324


# --- Parquet -----------------------------------------------------------------------------------


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_parquet_matching_columns() -> None:
    table = pa.table(
        {
            "tenant_id": ["other"],
            "account": ["acme"],
            "quantity": pa.array([Decimal("1.5")], pa.decimal128(18, 6)),
            "occurred_at": pa.array([when(12)], pa.timestamp("us", tz="UTC")),
        }
    )
    assert read(parquet(table), make_spec("parquet")) == [
        {"account": "acme", "quantity": Decimal("1.500000"), "occurred_at": when(12)}
    ]


def test_parquet_castable_columns() -> None:
    table = pa.table(
        {
            "account": pa.array(["acme", "beta"]).dictionary_encode(),
            "quantity": pa.array([1, 2], pa.int32()),
            "occurred_at": ["2024-01-31T12:00:00Z", None],
        }
    )
    assert read(parquet(table), make_spec("parquet"), batch_rows=1) == [
        {"account": "acme", "quantity": Decimal(1), "occurred_at": when(12)},
        {"account": "beta", "quantity": Decimal(2), "occurred_at": None},
    ]


def test_parquet_lossy_cast_names_the_row() -> None:
    table = pa.table(
        {
            "account": ["a", "b", "c"],
            "quantity": pa.array([1.5, 2.0, 1.0000001], pa.float64()),
            "occurred_at": pa.array([when(12)] * 3, pa.timestamp("us", tz="UTC")),
        }
    )
    (problem,) = problems(parquet(table), make_spec("parquet"), batch_rows=2)
    assert (problem.line, problem.column) == (3, "quantity")
    assert "without loss" in problem.reason


def test_parquet_missing_column_and_not_parquet() -> None:
    table = pa.table({"account": ["a"]})
    (problem,) = problems(parquet(table), make_spec("parquet"))
    assert "lacks column(s) 'quantity', 'occurred_at'" in problem.reason
    (problem,) = problems(b"account\n", make_spec("parquet"))
    assert "not a Parquet file" in problem.reason
    (problem,) = problems(parquet(table), make_spec("parquet"), gzip=True)
    assert "gzipped Parquet" in problem.reason


@pytest.mark.parametrize(
    ("declared", "times", "says"),
    [
        ("timestamptz", pa.array([None, dt.datetime(2024, 1, 31, 12)]), "no zone offset"),
        ("timestamptz", pa.array([None, dt.date(2024, 1, 31)]), "no zone offset"),
        (
            "timestamp",
            pa.array(
                [None, dt.datetime(2024, 1, 31, 12, tzinfo=PARIS)],
                pa.timestamp("ms", "Europe/Paris"),
            ),
            "has a zone offset, but the column is a timestamp without time zone",
        ),
    ],
)
def test_parquet_timestamps_follow_the_zone_rule_of_text(
    declared: str, times: pa.Array, says: str
) -> None:
    """As "2024-01-31 12:00:00" is refused for a timestamptz column, so is a naive Parquet
    timestamp: Arrow would take it as UTC. A zoned one would lose its zone in a timestamp."""
    spec = make_spec("parquet", columns={"at": declared})
    (problem,) = problems(parquet(pa.table({"at": times})), spec)
    assert (problem.line, problem.column) == (2, "at")
    assert says in problem.reason
    assert read(parquet(pa.table({"at": times[:1]})), spec) == [{"at": None}]


def test_parquet_timestamps_matching_their_column_are_read() -> None:
    paris = pa.array(
        [dt.datetime(2024, 1, 31, 12, tzinfo=PARIS)], pa.timestamp("ms", "Europe/Paris")
    )
    naive = pa.array([dt.datetime(2024, 1, 31, 12)], pa.timestamp("ns"))
    spec = make_spec("parquet", columns={"zoned": "timestamptz", "naive": "timestamp"})
    assert read(parquet(pa.table({"zoned": paris, "naive": naive})), spec) == [
        {"zoned": when(11), "naive": dt.datetime(2024, 1, 31, 12)}
    ]


def test_parquet_double_beyond_real_is_refused() -> None:
    spec = make_spec("parquet", columns={"r": "real"})
    values = pa.array([1.5, float("inf"), float("nan"), 0.0, 1e300, 1e-300])
    found = problems(parquet(pa.table({"r": values})), spec)
    assert [(p.line, p.column) for p in found] == [(5, "r"), (6, "r")]
    assert "out of range for real" in found[0].reason
