"""One import run end to end on real components: files in the customer's bucket on the moto
server, read with the customer's own credentials (as the read-only role would), loaded into a
real PostgreSQL table. New files once each, a bad file rejected whole with its line while the
good ones go on, a changed file reported and skipped, a second run a no-op."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byob.aws.import_objects import S3ImportObjects
from byob.demo.emulator import LocalAws
from byob.domain.imports import ImportFormat, ImportSpec, import_column
from byob.engine.importer import run_import
from byob.sources.import_target import PostgresImportTarget
from tests.support import pg_exec

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
