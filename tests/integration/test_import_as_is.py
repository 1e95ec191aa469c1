"""A plain CSV block's own lines given to COPY (engine.import_files.CsvLines) load exactly the
values the typed way loads (Arrow's values written back as CSV), on a real cluster; a block
COPY could read otherwise than Arrow did goes the typed way. Each case is loaded both ways
into twin tables and read back as text."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import psycopg
import pytest

from byob.domain.imports import ImportFormat, ImportSpec, import_column
from byob.engine.import_files import CsvLines, read_import_chunks, read_import_file
from byob.errors import FileRejectedError
from byob.sources.import_target import PostgresImportTarget
from tests.support import pg_exec

COLUMNS = {
    "account": "text",
    "quantity": "numeric(18,6)",
    "occurred_at": "timestamptz",
    "n": "bigint",
    "day": "date",
    "flag": "boolean",
    "at": "timestamp",
    "id": "uuid",
}
SPEC = ImportSpec(
    name="as_is",
    table="fast",
    tenant_column="tenant_id",
    format=ImportFormat.CSV,
    columns=tuple(import_column(k, v) for k, v in COLUMNS.items()),
)
GOOD = {
    "quantity": "1.5",
    "occurred_at": "2026-01-31T12:00:00Z",
    "n": "7",
    "day": "2026-01-31",
    "flag": "t",
    "at": "2026-01-31 12:00:00",
    "id": "0c9d2f3e-5b8a-4c1d-9e2f-3a4b5c6d7e8f",
}
# (column, value, whether the block's lines may go as they are): every value is one Arrow
# accepts; those COPY would read otherwise (or refuse) must go the typed way.
CASES = [
    ("quantity", "1.5", True),
    ("quantity", "+1.5", True),
    ("quantity", ".5", True),
    ("quantity", "5.", True),
    ("quantity", "-.5", True),
    ("quantity", "007", True),
    ("quantity", "-0", True),
    ("quantity", "1.5000000", True),
    ("quantity", "123456789012.123456", True),
    ("quantity", "1e3", False),
    ("quantity", "1E+3", False),
    ("quantity", "1e-1000", False),
    ("quantity", " 1.5", False),
    ("quantity", "\u00a01.5", False),
    ("quantity", "1.5\t", False),
    ("quantity", "", True),
    ("occurred_at", "2026-01-31 12:00:00.5Z", True),
    ("occurred_at", "2026-01-31T12:00:00.000001Z", True),
    ("occurred_at", "2026-01-31T12:00Z", True),
    ("occurred_at", "2026-01-31T12:00:00+15:59", True),
    ("occurred_at", "2026-01-31T12:00:00-15:59", True),
    ("occurred_at", "2026-01-31T12:00:00-00:00", True),
    ("occurred_at", "2026-01-31T12:00:00.123+01:00", True),
    ("occurred_at", "0001-01-01T00:00:00Z", True),
    ("occurred_at", "2026-01-31T12:00:00+16:00", False),
    ("occurred_at", "2026-01-31T12:00:00+23:00", False),
    ("occurred_at", "2026-01-31T12:00:00+1530", False),
    ("occurred_at", "2026-01-31T12:00:00+15", False),
    ("occurred_at", "2026-01-31T12Z", False),
    ("occurred_at", "2026-01-31 12Z", False),
    ("occurred_at", "2026-01-31T12+01:00", False),
    ("occurred_at", " 2026-01-31T12:00:00Z", False),
    ("n", "-5", True),
    ("n", "007", True),
    ("n", "-0", True),
    ("n", "9223372036854775807", True),
    ("n", "0x10", False),
    ("n", "0X10", False),
    ("n", "5 ", False),
    ("day", "0001-01-01", True),
    ("day", "9999-12-31", True),
    ("flag", "TRUE", True),
    ("flag", "yes", True),
    ("flag", "Y", True),
    ("flag", "on", True),
    ("flag", "Off", True),
    ("flag", "0", True),
    ("flag", "1", True),
    ("flag", " true", False),
    ("at", "2026-01-31T12:00:00.123456", True),
    ("at", "2026-01-31 12:00", True),
    ("at", "2026-01-31", False),
    ("at", "2026-01-31T12", False),
    ("at", "2026-01-31 12", False),
    ("id", "0C9D2F3E-5B8A-4C1D-9E2F-3A4B5C6D7E8F", False),
    ("account", " spaced  out ", True),
    ("account", "\\.", True),
    ("account", "naïve ✓", True),
    ("account", "tab\there", True),
    ("account", "", True),
]


def table_ddl(name: str, **types: str) -> str:
    declared = {**COLUMNS, **types}
    columns = ", ".join(f"{k} {v}" for k, v in declared.items())
    return f"CREATE TABLE {name} (tenant_id text NOT NULL, {columns})"


@pytest.fixture
def target(pg_url: str) -> PostgresImportTarget:
    pg_exec(pg_url, table_ddl("fast"))
    pg_exec(pg_url, table_ddl("typed"))
    target = PostgresImportTarget(pg_url)
    target.ensure_ledger()
    return target


def csv_file(rows: list[dict[str, str]], delimiter: str = ",", newline: str = "\n") -> bytes:
    names = list(rows[0])
    lines = [delimiter.join(names)] + [delimiter.join(r[n] for n in names) for r in rows]
    return (newline.join(lines) + newline).encode()


def three_rows(column: str, value: str) -> list[dict[str, str]]:
    rows = [{"account": f"r{i}", **GOOD} for i in range(3)]
    rows[1][column] = value
    if column == "account":
        rows[1]["n"] = "8"  # the rows are told apart by n
    return rows


def table_text(url: str, table: str) -> list[tuple[Any, ...]]:
    names = ", ".join(f"{c}::text" for c in ("tenant_id", *COLUMNS))
    with psycopg.connect(url) as db:
        return db.execute(f"SELECT {names} FROM {table} ORDER BY n, account").fetchall()


def load_both(
    target: PostgresImportTarget,
    body: bytes,
    *,
    spec: ImportSpec = SPEC,
    tenant: str = "acme",
    **options: Any,
) -> bool:
    """Load ``body`` as is where it can into "fast" and typed into "typed" (emptied first);
    whether some of its lines went as they are. Both tables must then hold the same."""
    pg_exec(target.url, "TRUNCATE fast, typed; TRUNCATE byob_import_ledger")
    chunks = list(read_import_chunks(io.BytesIO(body), spec, as_is=True, **options))
    fast = target.load(
        spec, chunks, connection_id="c", tenant=tenant, key="fast", etag="e", size=len(body)
    )
    typed_spec = dataclasses.replace(spec, table="typed")
    typed = target.load(
        typed_spec,
        read_import_file(io.BytesIO(body), typed_spec, **options),
        connection_id="c",
        tenant=tenant,
        key="typed",
        etag="e",
        size=len(body),
    )
    assert fast.rows == typed.rows
    return any(isinstance(c, CsvLines) for c in chunks)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_as_they_are_load_what_the_typed_way_loads(
    target: PostgresImportTarget, pg_url: str, newline: str
) -> None:
    went_as_is = {}
    for column, value, _ in CASES:
        body = csv_file(three_rows(column, value), newline=newline)
        went_as_is[column, value] = load_both(target, body)
        assert table_text(pg_url, "fast") == table_text(pg_url, "typed"), (column, value)
        assert len(table_text(pg_url, "fast")) == 3
    assert went_as_is == {(c, v): expected for c, v, expected in CASES}


def test_values_the_typed_way_refuses_are_refused_alike(target: PostgresImportTarget) -> None:
    for column, value in [
        ("quantity", "1.1234567"),
        ("quantity", "NaN"),
        ("quantity", "1234567890123.1"),
        ("occurred_at", "2026-01-31T12:00:00"),
        ("occurred_at", "2026-01-31T12:00:00.1234567Z"),
        ("n", "+5"),
        ("flag", "maybe"),
        ("id", "not-a-uuid"),
    ]:
        body = csv_file(three_rows(column, value))
        with pytest.raises(FileRejectedError) as fast:
            list(read_import_chunks(io.BytesIO(body), SPEC, as_is=True))
        with pytest.raises(FileRejectedError) as typed:
            list(read_import_file(io.BytesIO(body), SPEC))
        assert fast.value.problems == typed.value.problems
        assert fast.value.problems[0].line == 3


def test_the_files_column_order_and_delimiter_go_to_copy(
    target: PostgresImportTarget, pg_url: str
) -> None:
    rows = [{"account": f"r{i}", **GOOD, "n": str(i)} for i in range(4)]
    shuffled = [dict(reversed(list(r.items()))) for r in rows]
    for delimiter in [",", ";", "|", "\t"]:
        spec = dataclasses.replace(SPEC, csv_delimiter=delimiter)
        assert load_both(target, csv_file(shuffled, delimiter), spec=spec)
        assert table_text(pg_url, "fast") == table_text(pg_url, "typed")
        assert sorted(r[1] for r in table_text(pg_url, "fast")) == ["r0", "r1", "r2", "r3"]


def test_a_typed_block_after_lines_as_they_are_keeps_their_order_and_delimiter(
    target: PostgresImportTarget, pg_url: str
) -> None:
    """Small blocks: the first go as they are; a quoted field sends the rest of the file
    through the csv module, written in the order and with the delimiter COPY was opened with."""
    rows = [{"account": f"r{i:03}", **GOOD, "n": str(i)} for i in range(60)]
    rows[45]["account"] = '"quoted; ""r045"""'
    shuffled = [dict(reversed(list(r.items()))) for r in rows]
    spec = dataclasses.replace(SPEC, csv_delimiter=";")
    body = csv_file(shuffled, ";")
    chunks = list(read_import_chunks(io.BytesIO(body), spec, as_is=True, batch_bytes=1024))
    kinds = [isinstance(c, CsvLines) for c in chunks]
    assert kinds[0] and not kinds[-1]
    assert load_both(target, body, spec=spec, batch_bytes=1024)
    got = table_text(pg_url, "fast")
    assert got == table_text(pg_url, "typed")
    assert len(got) == 60 and 'quoted; "r045"' in [r[1] for r in got]


@pytest.mark.parametrize(
    "tenant", ['ac"me', "a,c;m|e", "line\nbreak", "", "naïve", "\\."], ids=repr
)
def test_the_tenant_is_the_connections_whatever_it_holds(
    target: PostgresImportTarget, pg_url: str, tenant: str
) -> None:
    assert load_both(target, csv_file(three_rows("n", "9")), tenant=tenant)
    got = table_text(pg_url, "fast")
    assert got == table_text(pg_url, "typed")
    assert [r[0] for r in got] == [tenant] * 3


def test_blocks_copy_could_read_otherwise_go_the_typed_way(
    target: PostgresImportTarget, pg_url: str
) -> None:
    rows = three_rows("n", "9")
    with_tenant = [{**r, "tenant_id": "globex"} for r in rows]
    extra = [{**r, "note": "x"} for r in rows]
    body = csv_file(rows)
    blank = body.replace(b"\nr1,", b"\n\nr1,")
    no_header = body.split(b"\n", 1)[1]
    for case, spec in [
        (csv_file(with_tenant), SPEC),  # the tenant column is never read from the file
        (csv_file(extra), SPEC),  # COPY cannot skip a field
        (blank, SPEC),  # Arrow skips a blank line, COPY refuses it
        (csv_file(rows, "~"), dataclasses.replace(SPEC, csv_delimiter="~")),
    ]:
        assert not load_both(target, case, spec=spec)
        got = table_text(pg_url, "fast")
        assert got == table_text(pg_url, "typed") and len(got) == 3
        assert {r[0] for r in got} == {"acme"}
    headless = dataclasses.replace(SPEC, csv_header=False)
    assert load_both(target, no_header, spec=headless)
    assert table_text(pg_url, "fast") == table_text(pg_url, "typed")
    assert load_both(target, body.rstrip(b"\n"))  # no newline at the end
    assert table_text(pg_url, "fast") == table_text(pg_url, "typed")


@pytest.mark.parametrize(
    ("column", "kind"),
    [("quantity", "numeric"), ("quantity", "text"), ("n", "integer"), ("at", "varchar")],
)
def test_a_column_of_another_type_than_declared_takes_the_typed_values(
    pg_url: str, column: str, kind: str
) -> None:
    """A text column would keep "1.5" where the typed way writes 1.500000; an unconstrained
    numeric its scale."""
    pg_exec(pg_url, table_ddl("fast", **{column: kind}))
    pg_exec(pg_url, table_ddl("typed", **{column: kind}))
    target = PostgresImportTarget(pg_url)
    target.ensure_ledger()
    load_both(target, csv_file(three_rows("n", "9")))
    assert table_text(pg_url, "fast") == table_text(pg_url, "typed")
