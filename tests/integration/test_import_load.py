"""Loading an import's file into the vendor's PostgreSQL (sources/import_target.py) on a real
cluster: the rows with the connection's tenant and the ledger row commit together, an object
is loaded once per (key, ETag) however many workers try, and a file that fails part-way leaves
nothing behind (a row the table refuses rejects it whole) — read back with psycopg."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from byob.domain.imports import ImportFormat, ImportSpec, import_column
from byob.engine.import_files import read_import_file
from byob.errors import FileRejectedError, SourceError
from byob.sources.import_target import LEDGER, PostgresImportTarget
from tests.support import pg_exec

SPEC = ImportSpec(
    name="usage_events",
    table="public.usage_events",
    tenant_column="tenant_id",
    format=ImportFormat.CSV,
    columns=(
        import_column("account", "text"),
        import_column("quantity", "numeric(18,6)"),
        import_column("occurred_at", "timestamptz"),
    ),
)
GOOD = (
    b"account,quantity,occurred_at,tenant_id\n"
    b"acct-1,1.5,2026-12-01T10:00:00Z,globex\n"
    b'"acct, ""two""",2.25,2026-12-01T11:00:00+01:00,globex\n'
    b'"",3,2026-12-01T12:00:00Z,globex\n'
)


@pytest.fixture
def target(pg_url: str) -> PostgresImportTarget:
    pg_exec(
        pg_url,
        "CREATE TABLE usage_events (tenant_id text NOT NULL, account text, "
        "quantity numeric(18,6) CHECK (quantity < 1000), occurred_at timestamptz NOT NULL)",
    )
    target = PostgresImportTarget(pg_url)
    target.ensure_ledger()
    target.ensure_ledger()  # idempotent
    return target


def rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT tenant_id, account, quantity, occurred_at FROM usage_events ORDER BY quantity"
        ).fetchall()


def ledger(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(f"SELECT object_key, etag, rows, bytes FROM {LEDGER}").fetchall()


def load(
    target: PostgresImportTarget, body: bytes, *, key: str = "usage/a.csv", etag: str = "e1"
) -> Any:
    return target.load(
        SPEC,
        read_import_file(io.BytesIO(body), SPEC, batch_rows=2),
        connection_id="c1",
        tenant="acme",
        key=key,
        etag=etag,
        size=len(body),
    )


def test_a_file_lands_with_the_connections_tenant_and_its_ledger_row(
    target: PostgresImportTarget, pg_url: str
) -> None:
    done = load(target, GOOD)
    assert (done.rows, done.already) == (3, False)
    got = rows(pg_url)
    assert [r[0] for r in got] == ["acme"] * 3  # never the file's "globex"
    assert [r[1] for r in got] == ["acct-1", 'acct, "two"', None]  # an empty CSV field: NULL
    assert [r[2] for r in got] == [Decimal("1.5"), Decimal("2.25"), Decimal("3")]
    assert got[1][3].isoformat() == "2026-12-01T10:00:00+00:00"
    assert ledger(pg_url) == [("usage/a.csv", "e1", 3, len(GOOD))]
    assert target.imported("c1") == {"usage/a.csv": "e1"}


def test_empty_text_and_null_stay_apart_on_the_way_into_copy(
    target: PostgresImportTarget, pg_url: str
) -> None:
    """JSON Lines can say both; COPY's CSV must not turn "" into NULL or back."""
    batch = pa.RecordBatch.from_pydict(
        {
            "account": ["", None, 'x,\n"y"'],
            "quantity": pa.array([Decimal(1), Decimal(2), Decimal(3)], pa.decimal128(18, 6)),
            "occurred_at": pa.array(
                [datetime(2026, 12, 1, tzinfo=UTC)] * 3, pa.timestamp("us", "UTC")
            ),
        }
    )
    target.load(SPEC, [batch], connection_id="c1", tenant="acme", key="k", etag="e", size=1)
    assert [r[1] for r in rows(pg_url)] == ["", None, 'x,\n"y"']


def test_the_same_object_is_loaded_once_and_a_changed_one_again(
    target: PostgresImportTarget, pg_url: str
) -> None:
    load(target, GOOD)
    again = load(target, GOOD)
    assert (again.rows, again.already) == (0, True)
    assert len(rows(pg_url)) == 3
    assert load(target, GOOD, etag="e2").rows == 3  # a new ETag is a new object version
    assert len(rows(pg_url)) == 6


def test_racing_workers_load_an_object_once(target: PostgresImportTarget, pg_url: str) -> None:
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(load(target, GOOD))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.already for r in results) == [False, True, True, True]
    assert len(rows(pg_url)) == 3 and len(ledger(pg_url)) == 1


def test_a_file_rejected_part_way_leaves_nothing(target: PostgresImportTarget, pg_url: str) -> None:
    # The first batch (2 rows) is already in COPY when the third row fails to parse.
    bad = GOOD + b"acct-4,not-a-number,2026-12-01T13:00:00Z,acme\n"
    with pytest.raises(FileRejectedError, match="line 5"):
        load(target, bad)
    assert rows(pg_url) == [] and ledger(pg_url) == []
    assert load(target, GOOD).rows == 3  # and it can be loaded once fixed


@pytest.mark.parametrize(
    ("ddl", "bad", "column", "value", "says"),
    [
        ("", b"acct-5,5000,2026-12-01T13:00:00Z", None, None, "usage_events_quantity_check"),
        ("", b"acct-5,5,", "occurred_at", None, "violates not-null constraint"),
        (
            "ALTER TABLE usage_events ALTER account TYPE varchar(12)",
            b"acct-thirteen,5,2026-12-01T13:00:00Z",
            "account",
            "acct-thirteen",
            "value too long for type character varying(12)",
        ),
        (
            "CREATE UNIQUE INDEX ON usage_events (account)",
            b"acct-1,5,2026-12-01T13:00:00Z",
            None,
            None,
            "Key (account)=(acct-1) already exists",
        ),
    ],
    ids=["check", "not-null", "too-long", "unique"],
)
def test_a_row_the_table_refuses_rejects_the_file_whole_and_says_where(
    target: PostgresImportTarget,
    pg_url: str,
    ddl: str,
    bad: bytes,
    column: str | None,
    value: str | None,
    says: str,
) -> None:
    """byob's own checks pass the row and the table refuses it: the same file would fail the
    same way at every retry, so it is rejected (the run goes on), never a retryable error."""
    if ddl:
        pg_exec(pg_url, ddl)
    # The first batch (2 rows) is already in COPY when the table refuses the fourth row.
    with pytest.raises(FileRejectedError) as refused:
        load(target, GOOD + bad + b",acme\n")
    (problem,) = refused.value.problems
    assert (problem.column, problem.value) == (column, value)
    assert says in problem.reason
    # Its values are quoted: a line break inside one would put the fourth row past line 5.
    assert problem.line is None
    assert "the table refused row 4 of the file (not counting the header)" in problem.reason
    assert rows(pg_url) == [] and ledger(pg_url) == []
    assert load(target, GOOD).rows == 3  # and the table takes the others once it is fixed


def test_a_database_failure_stays_an_error_to_retry(
    target: PostgresImportTarget, pg_url: str
) -> None:
    """Not a row's fault (here a full disk, raised by a trigger): the run stops on it and a
    later run tries the file again."""
    pg_exec(
        pg_url,
        "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'no space left' USING ERRCODE = 'disk_full'; END$$",
        "CREATE TRIGGER full_disk BEFORE INSERT ON usage_events "
        "FOR EACH ROW EXECUTE FUNCTION full_disk()",
    )
    with pytest.raises(SourceError, match=r"nothing of it was kept: no space left"):
        load(target, GOOD)
    assert rows(pg_url) == [] and ledger(pg_url) == []


def test_a_missing_ledger_or_table_says_what_to_do(pg_url: str) -> None:
    target = PostgresImportTarget(pg_url)
    with pytest.raises(SourceError, match="byob_import_ledger does not exist; run `byob migrate"):
        load(target, GOOD)
    target.ensure_ledger()
    with pytest.raises(SourceError, match=r"public\.usage_events does not exist; create it"):
        load(target, GOOD)


# -- `byob models check` for an import ----------------------------------------------------------


def test_a_matching_table_has_no_problems(target: PostgresImportTarget, pg_url: str) -> None:
    assert target.check(SPEC) == []
    # A text column takes any declared type (COPY reads each value's text).
    pg_exec(
        pg_url,
        "ALTER TABLE usage_events DROP CONSTRAINT usage_events_quantity_check, "
        "ALTER quantity TYPE varchar(40)",
    )
    assert target.check(SPEC) == []


def test_check_names_each_problem_and_what_to_do(pg_url: str) -> None:
    target = PostgresImportTarget(pg_url)
    assert target.check(SPEC) == [
        "table public.usage_events does not exist; create it, or fix `table` in the models file"
    ]
    pg_exec(
        pg_url, "CREATE TABLE usage_events (tenant_id text, account integer, occurred_at boolean)"
    )
    assert target.check(SPEC) == [
        "table public.usage_events has no column 'quantity'; add it, or fix the import",
        "column 'account' of public.usage_events is integer, but the import declares text: "
        "declare integer, or change the column",
        "column 'occurred_at' of public.usage_events is boolean, but the import declares "
        "timestamptz: declare boolean, or change the column",
        "byob_import_ledger does not exist; run `byob migrate-imports`",
    ]


def test_check_says_which_grant_is_missing(target: PostgresImportTarget, pg_url: str) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    pg_exec(pg_url, f"CREATE ROLE {role} LOGIN")
    try:
        pg_exec(pg_url, f"GRANT SELECT ON usage_events, {LEDGER} TO {role}")
        as_reader = PostgresImportTarget(pg_url.replace("postgres@", f"{role}@", 1))
        assert as_reader.check(SPEC) == [
            "the source user may not INSERT into public.usage_events; GRANT INSERT ON "
            "public.usage_events TO the user of the [source] url",
            f"the source user may not SELECT, INSERT and UPDATE {LEDGER}; grant them",
        ]
    finally:
        pg_exec(pg_url, f"DROP OWNED BY {role}; DROP ROLE {role}")
