"""One import run end to end on real components: files in the customer's bucket on the moto
server, read with the customer's own credentials (as the read-only role would), loaded into a
real PostgreSQL table. New files once each, a bad file (or one with a row the table refuses)
rejected whole with its line while the good ones go on, a changed file reported by its key and
skipped, a second run a no-op; through the use case, the rejections of a run that fails kept."""

from __future__ import annotations

import gzip
import io
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byob.aws.import_objects import S3ImportObjects
from byob.demo.emulator import LocalAws
from byob.domain.imports import ImportFormat, ImportSpec, import_column
from byob.engine.importer import run_import
from byob.errors import ByobError
from byob.services import Services
from byob.sources.import_target import PostgresImportTarget
from tests.integration.test_import_connections import checks_of, import_services, onboard
from tests.support import RecordedEvents, pg_exec

BUCKET = "acme-usage"
SPEC = ImportSpec(
    name="usage_events",
    table="usage_events",
    tenant_column="tenant_id",
    format=ImportFormat.CSV,
    columns=(import_column("account", "text"), import_column("quantity", "integer")),
    key_pattern="**.csv*",
)
HEADER = b"account,quantity\n"


@pytest.fixture
def setup(pg_url: str, aws: LocalAws) -> tuple[Any, PostgresImportTarget, S3ImportObjects]:
    pg_exec(pg_url, "CREATE TABLE usage_events (tenant_id text, account text, quantity integer)")
    target = PostgresImportTarget(pg_url)
    target.ensure_ledger()
    customer = aws.customer("210987654321")
    customer.create_bucket(BUCKET)
    s3 = customer.client("s3")
    objects = S3ImportObjects(s3, BUCKET, region="us-east-1", who="the role")
    return s3, target, objects


def total(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT tenant_id, count(*), sum(quantity) FROM usage_events GROUP BY 1"
        ).fetchall()


def run(target: PostgresImportTarget, objects: S3ImportObjects) -> Any:
    return run_import(SPEC, objects, target, connection_id="c1", tenant="acme", prefix="in/")


def test_new_files_once_bad_ones_rejected_changed_ones_reported(setup: Any, pg_url: str) -> None:
    s3, target, objects = setup
    s3.put_object(Bucket=BUCKET, Key="in/2026/a.csv", Body=HEADER + b"x,1\ny,2\n")
    s3.put_object(Bucket=BUCKET, Key="in/2026/b.csv.gz", Body=gzip.compress(HEADER + b"z,3\n"))
    s3.put_object(Bucket=BUCKET, Key="in/2026/c.csv", Body=HEADER + b"w,four\n")
    s3.put_object(Bucket=BUCKET, Key="in/README.txt", Body=b"not an import file")
    s3.put_object(Bucket=BUCKET, Key="out/d.csv", Body=HEADER + b"v,5\n")  # not under in/

    first = run(target, objects)
    assert first.seen == 3
    assert first.imported == ["in/2026/a.csv", "in/2026/b.csv.gz"]
    [rejected] = first.rejected
    assert rejected.key == "in/2026/c.csv"
    assert str(rejected.problems[0]).startswith("line 2, column 'quantity', value 'four'")
    assert (first.rows, first.bytes) == (3, len(HEADER) + 8 + len(gzip.compress(HEADER + b"z,3\n")))
    assert total(pg_url) == [("acme", 3, 6)]

    s3.put_object(Bucket=BUCKET, Key="in/2026/a.csv", Body=HEADER + b"x,100\n")  # a new ETag
    second = run(target, objects)
    assert second.imported == [] and second.changed == ["in/2026/a.csv"]
    assert [r.key for r in second.rejected] == ["in/2026/c.csv"]  # still bad, still said
    assert total(pg_url) == [("acme", 3, 6)]

    s3.put_object(Bucket=BUCKET, Key="in/2026/c.csv", Body=HEADER + b"w,4\n")  # fixed
    third = run(target, objects)
    assert third.imported == ["in/2026/c.csv"] and third.rejected == []
    assert total(pg_url) == [("acme", 4, 10)]


def test_a_row_the_table_refuses_rejects_its_file_and_the_next_ones_load(
    setup: Any, pg_url: str
) -> None:
    """The row parses, so byob's own checks pass it; the table refuses it (NOT NULL). Runs go
    in key order: were that a failure, every run would stop at in/2.csv again."""
    s3, target, objects = setup
    pg_exec(pg_url, "ALTER TABLE usage_events ALTER quantity SET NOT NULL")
    s3.put_object(Bucket=BUCKET, Key="in/1.csv", Body=HEADER + b"a,1\n")
    s3.put_object(Bucket=BUCKET, Key="in/2.csv", Body=HEADER + b"b,2\nc,\nd,4\n")
    s3.put_object(Bucket=BUCKET, Key="in/3.csv", Body=HEADER + b"e,5\n")

    first = run(target, objects)
    assert first.imported == ["in/1.csv", "in/3.csv"]
    [rejected] = first.rejected
    assert rejected.key == "in/2.csv"
    [problem] = rejected.problems
    assert (problem.line, problem.column) == (3, "quantity")  # the header, then b, then c
    assert "violates not-null constraint" in problem.reason
    assert total(pg_url) == [("acme", 2, 6)]  # nothing of in/2.csv, not even "b,2"

    second = run(target, objects)  # the engine alone keeps no rejections: told again
    assert second.imported == [] and [r.key for r in second.rejected] == ["in/2.csv"]
    assert total(pg_url) == [("acme", 2, 6)]


HOSTILE = (
    "in/with space.csv",
    "in/ünïcødé/数据 ☃.csv",
    "in/../escape.csv",
    "in/../../etc/passwd.csv",
    "in/a%20b%2F.csv",
    "in/a+b.csv",
    "in/a#b?c=d.csv",
    "in/" + "k" * (1024 - len("in/") - len(".csv")) + ".csv",  # S3's longest key: 1,024 bytes
    "in/" + "é" * ((1024 - len("in/.csv")) // 2) + ".csv",  # as long, two bytes a character
)


def test_hostile_keys_are_opaque_strings_imported_once_each(setup: Any, pg_url: str) -> None:
    s3, target, objects = setup
    for number, key in enumerate(HOSTILE):
        s3.put_object(Bucket=BUCKET, Key=key, Body=HEADER + f"k{number},1\n".encode())
    # Outside the base path whatever its "..": a key is a string, never a path to resolve.
    s3.put_object(Bucket=BUCKET, Key="out/../in/x.csv", Body=HEADER + b"outside,1000\n")
    assert all(len(key.encode()) <= 1024 for key in HOSTILE)
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]} >= set(HOSTILE)

    first = run(target, objects)
    assert first.imported == sorted(HOSTILE) and first.rejected == []
    assert total(pg_url) == [("acme", len(HOSTILE), len(HOSTILE))]
    with psycopg.connect(pg_url) as db:
        recorded = [key for (key,) in db.execute("SELECT object_key FROM byob_import_ledger")]
    assert sorted(recorded) == sorted(HOSTILE)  # verbatim: not normalised, not URL-decoded

    second = run(target, objects)
    assert (second.seen, second.imported, second.already) == (len(HOSTILE), [], [])
    assert total(pg_url) == [("acme", len(HOSTILE), len(HOSTILE))]


def test_a_tenant_column_in_the_file_is_ignored_for_the_connections_tenant(
    setup: Any, pg_url: str
) -> None:
    """In every format: the file says "globex", the rows and the ledger say "acme"."""
    s3, target, objects = setup
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=b"tenant_id,account,quantity\nglobex,x,1\n")
    s3.put_object(
        Bucket=BUCKET, Key="in/b.jsonl", Body=b'{"tenant_id":"globex","account":"y","quantity":2}\n'
    )
    table = pa.table({"tenant_id": ["globex"], "account": ["z"], "quantity": [3]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    s3.put_object(Bucket=BUCKET, Key="in/c.parquet", Body=sink.getvalue())

    for kind in (ImportFormat.CSV, ImportFormat.JSONL, ImportFormat.PARQUET):
        spec = replace(SPEC, format=kind, key_pattern=f"*.{kind.value}")
        done = run_import(spec, objects, target, connection_id="c1", tenant="acme", prefix="in/")
        assert len(done.imported) == 1 and done.rejected == [], (kind, done.rejected)
    assert total(pg_url) == [("acme", 3, 6)]
    with psycopg.connect(pg_url) as db:
        tenants = db.execute("SELECT DISTINCT tenant FROM byob_import_ledger").fetchall()
    assert tenants == [("acme",)]


# -- through the use case (services/imports.py) ------------------------------------------------


@pytest.fixture
def services(tmp_path: Path, pg_url: str, aws: LocalAws) -> tuple[Services, RecordedEvents]:
    """byob with the customer's role on the moto server and the vendor's table, whose quantity
    may not be NULL; a row with account "disk full" makes PostgreSQL fail as a full disk."""
    pg_exec(
        pg_url,
        "CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text, updated_at timestamptz)",
        "CREATE TABLE usage_events (tenant_id text NOT NULL, account text, "
        "quantity integer NOT NULL)",
        "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
        "IF NEW.account = 'disk full' THEN RAISE EXCEPTION 'no space left' "
        "USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END$$",
        "CREATE TRIGGER full_disk BEFORE INSERT ON usage_events "
        "FOR EACH ROW EXECUTE FUNCTION full_disk()",
    )
    return import_services(tmp_path, pg_url, aws)


def active(made: Services, aws: LocalAws) -> tuple[Any, Any]:
    conn, customer, _ = onboard(made, aws)
    checks_of(made, aws, conn.name)
    made.connections.activate(conn.name, actor="cli")
    return conn, customer.client("s3")


def test_a_run_that_fails_keeps_and_tells_the_files_it_rejected_before(
    services: tuple[Services, RecordedEvents], aws: LocalAws, pg_url: str
) -> None:
    made, recorded = services
    conn, s3 = active(made, aws)
    s3.put_object(Bucket=BUCKET, Key="drop/1.csv", Body=HEADER + b"a,1\n")
    s3.put_object(Bucket=BUCKET, Key="drop/2.csv", Body=HEADER + b"b,\n")  # NOT NULL
    s3.put_object(Bucket=BUCKET, Key="drop/3.csv", Body=HEADER + b"disk full,3\n")

    with pytest.raises(ByobError, match="no space left"):
        made.transfers.run(conn.name)

    _, page = made.transfers.history(conn.name)
    (failed,) = page.items
    assert failed.status.value == "failed" and failed.files == 1
    assert total(pg_url) == [("acme", 1, 1)]
    rejected = made.imports.rejected(conn.name)
    assert [(r.key, r.transfer_id) for r in rejected.items] == [("drop/2.csv", failed.id)]
    problem = rejected.items[0].problems[0]
    assert (problem.line, problem.column) == (2, "quantity")
    told = [p for n, p in recorded.items if n == "import.file_rejected"]
    assert [(p["key"], p["transfer_id"]) for p in told] == [("drop/2.csv", failed.id)]

    pg_exec(pg_url, "DROP TRIGGER full_disk ON usage_events")  # the disk has room again
    again = made.transfers.run(conn.name)[0].record
    assert again.status.value == "succeeded" and again.files == 1
    assert total(pg_url) == [("acme", 2, 4)]
    assert "1 rejected before, waiting for a retry" in (again.note or "")
    assert made.imports.rejected(conn.name).total == 1
    assert [n for n, _ in recorded.items].count("import.file_rejected") == 1  # told once


def test_a_file_changed_since_imported_is_named_with_what_to_do(
    services: tuple[Services, RecordedEvents],
    aws: LocalAws,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    made, recorded = services
    conn, s3 = active(made, aws)
    s3.put_object(Bucket=BUCKET, Key="drop/2026/a.csv", Body=HEADER + b"a,1\n")
    made.transfers.run(conn.name)
    s3.put_object(Bucket=BUCKET, Key="drop/2026/a.csv", Body=HEADER + b"a,10\n")  # corrected

    with caplog.at_level(logging.WARNING, logger="byob.imports"):
        second = made.transfers.run(conn.name)[0].record

    assert total(pg_url) == [("acme", 1, 1)]  # skipped: on_change = "skip", the default
    assert second.note is not None
    assert "1 changed since imported, skipped: 'drop/2026/a.csv' (to load it" in second.note
    assert 'on_change = "reimport"' in second.note and "under a new key" in second.note
    [warned] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'drop/2026/a.csv'" in warned.getMessage()
    fields = warned.__dict__["fields"]
    assert (fields["connection"], fields["tenant"], fields["import"]) == (
        conn.name,
        "acme",
        "usage_events",
    )
    assert (fields["changed"], fields["changed_total"]) == (["drop/2026/a.csv"], 1)
    succeeded = [p for n, p in recorded.items if n == "import.succeeded"]
    assert succeeded[-1]["changed"] == {"keys": ["drop/2026/a.csv"], "total": 1}
    assert succeeded[0]["changed"] == {"keys": [], "total": 0}
