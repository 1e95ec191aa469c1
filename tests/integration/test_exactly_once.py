"""Kill -9 at any point of a transfer, run it again: every row version of the window arrives
exactly once, and the high-water mark only moves when everything is durable.

The transfer runs as the real CLI in a subprocess. Deterministic kill points are reached by a
small wrapper that SIGKILLs the process from inside a chosen step (the code under test is not
changed); random points are reached by killing the subprocess from outside after a delay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from byob.demo.readback import connect_s3
from tests.kill_points import killer_script
from tests.support import make_services, onboard_s3, pg_exec, scratch_database, write_config

pytestmark = pytest.mark.integration

ROWS = 150_000  # about 3 files of 6 MB, each a multipart upload of 2 parts
MODEL = {
    "name": "events",
    "table": "events",
    "tenant_column": "tenant_id",
    "cursor_column": "updated_at",
    "primary_key": ["id"],
}
TUNING = {  # small files and parts so one transfer has several multipart files
    "BYOB_FILE_TARGET_BYTES": str(6 << 20),
    "BYOB_MULTIPART_PART_BYTES": str(5 << 20),
    "BYOB_ROW_GROUP_BYTES": str(1 << 20),
    "BYOB_SETTLE_LAG_SECONDS": "0",
}

# Runs the CLI with one step patched to SIGKILL the process when it is reached for the n-th
# time (after or before the real step, as named).
WRAPPER = killer_script(
    """
    from byob.store.transfers import Transfers
    from byob.destinations import s3

    if point == "part_uploaded":          # mid multipart: parts stored, nothing visible
        real_send = s3._MultipartWriter._send_part
        def send(self, body):
            real_send(self, body)
            seen["n"] += 1
            if seen["n"] == nth:
                for f in self._parts: f.result()
                os.kill(os.getpid(), signal.SIGKILL)
        s3._MultipartWriter._send_part = send
    elif point == "object_completed":     # file visible in S3, not yet recorded as committed
        die_at(s3._MultipartWriter, "commit", after=True)
    elif point == "file_recorded":        # n files durable and recorded
        die_at(Transfers, "file_committed", after=True)
    elif point == "before_commit":        # manifest written, high-water mark not advanced
        die_at(Transfers, "commit", after=False)
    """
)


@pytest.fixture(scope="module")
def events_template(pg_server_url: str) -> Iterator[str]:
    """The source's `events` table, built once for the module; each test gets a copy."""
    with scratch_database(pg_server_url, "events_template") as url:
        pg_exec(
            url,
            "CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
            "payload text, updated_at timestamptz NOT NULL)",
            f"INSERT INTO events SELECT i, CASE WHEN i % 10 = 0 THEN 'other' ELSE 'acme' END, "
            f"md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), "
            f"now() - interval '1 hour' + i * interval '1 millisecond' "
            f"FROM generate_series(1, {ROWS}) AS i",
        )
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def events(pg_server_url: str, events_template: str) -> Iterator[str]:
    with scratch_database(pg_server_url, "events", template=events_template) as url:
        yield url


def _env(tmp_path: Path, config: Path, aws: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TUNING)
    env.update(
        {
            "BYOB_HOME": str(tmp_path / ".byob"),
            "BYOB_CONFIG": str(config),
            "BYOB_AWS_ENDPOINT_URL": aws.endpoint_url,
        }
    )
    return env


def _cli(
    env: dict[str, str], *args: str, wrapper: tuple[str, int] | None = None
) -> subprocess.CompletedProcess[str]:
    if wrapper:
        cmd = [sys.executable, "-c", WRAPPER, wrapper[0], str(wrapper[1]), "--", *args]
    else:
        cmd = [sys.executable, "-m", "byob.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _setup(
    tmp_path: Path, events: str, aws: Any, **app_settings: Any
) -> tuple[Any, Any, dict[str, str]]:
    config = write_config(tmp_path / "byob.toml", events, [MODEL])
    app = make_services(tmp_path, config, aws, **app_settings)
    _, customer = onboard_s3(app, aws)
    return app, customer, _env(tmp_path, config, aws)


def _assert_exactly_once(app: Any, customer: Any, aws: Any, pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url) as db:
        expected = sorted(
            r[0] for r in db.execute("SELECT id FROM events WHERE tenant_id = 'acme'")
        )
    con = connect_s3(aws.endpoint_url, **customer.credentials())
    delivered = sorted(
        r[0]
        for r in con.execute(
            "SELECT id FROM read_parquet('s3://bkt/exports/events/*/*.parquet', hive_partitioning = true)"
        ).fetchall()
    )
    assert len(delivered) == len(expected), "rows missing or duplicated"
    assert delivered == expected
    assert customer.client("s3").list_multipart_uploads(Bucket="bkt").get("Uploads", []) == []
    conn = app.connections.get("c1")
    records = app.adapters.state.transfers.history(conn.id)
    assert records[0].status == "succeeded"
    state = app.adapters.state.transfers.model_state(conn.id, "events")
    assert state.last_transfer_id == records[-1].id or state.last_transfer_id in {
        r.id for r in records
    }


@pytest.mark.parametrize(
    ("point", "nth"),
    [
        ("part_uploaded", 1),
        ("part_uploaded", 3),
        ("object_completed", 1),
        ("object_completed", 2),
        ("file_recorded", 2),
        ("before_commit", 1),
    ],
)
def test_kill_at_a_step_then_retry_delivers_exactly_once(
    tmp_path: Path, events: str, aws: Any, point: str, nth: int
) -> None:
    app, customer, env = _setup(tmp_path, events, aws)
    killed = _cli(env, "transfers", "run", "c1", "--json", wrapper=(point, nth))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    conn = app.connections.get("c1")
    interrupted = app.adapters.state.transfers.pending(conn.id, "events")[0]
    assert interrupted is not None and interrupted.status == "running"
    assert (
        app.adapters.state.transfers.model_state(conn.id, "events").high_water_mark is None
    )  # not advanced

    retried = _cli(env, "transfers", "run", "c1", "--json")
    assert retried.returncode == 0, retried.stderr
    _assert_exactly_once(app, customer, aws, events)
    finished = app.transfers.get(interrupted.id)
    assert finished.status == "succeeded" and finished.attempts == 2
    assert finished.window == interrupted.window and finished.started_at == interrupted.started_at


def test_random_kills_then_retry_delivers_exactly_once(
    tmp_path: Path, events: str, aws: Any
) -> None:
    app, customer, env = _setup(tmp_path, events, aws)
    rng = random.Random(20261122)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-m", "byob.cli", "transfers", "run", "c1", "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    final = _cli(env, "transfers", "run", "c1", "--json")
    assert final.returncode == 0, final.stderr
    _assert_exactly_once(app, customer, aws, events)


def test_retry_needing_fewer_files_voids_the_surplus_without_delete_permission(
    tmp_path: Path, events: str, aws: Any
) -> None:
    """A retry that writes fewer files than the killed attempt replaced the extra ones with
    empty Parquet files when the recipient has withdrawn s3:DeleteObject."""
    service_keys = aws.create_service_user()
    app, customer, env = _setup(
        tmp_path,
        events,
        aws,
        service_session=boto3.Session(
            aws_access_key_id=service_keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=service_keys["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ),
    )
    env.update(service_keys)
    iam = customer.client("iam")
    role = app.connections.get("c1").role_name
    iam.put_role_policy(
        RoleName=role,
        PolicyName="byob-transfer",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": ["s3:PutObject", "s3:AbortMultipartUpload"], '
        '"Resource": "arn:aws:s3:::bkt/exports/*"}]}',
    )
    aws.enforce_iam(True)
    killed = _cli(env, "transfers", "run", "c1", "--json", wrapper=("file_recorded", 3))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    aws.enforce_iam(False)
    # Rows deleted at the source meanwhile: the retry's re-read of the window needs fewer files.
    pg_exec(events, f"DELETE FROM events WHERE id > {ROWS // 3}")
    aws.enforce_iam(True)
    retried = _cli(env, "transfers", "run", "c1", "--json")
    aws.enforce_iam(False)
    assert retried.returncode == 0, retried.stderr
    _assert_exactly_once(app, customer, aws, events)
    conn = app.connections.get("c1")
    transfer = app.adapters.state.transfers.history(conn.id)[-1]
    states = [f.state for f in app.adapters.state.transfers.files(transfer.id)]
    assert "void" in states and states.index("void") > 0
    assert all(s == "committed" for s in states[: states.index("void")])


@pytest.mark.parametrize(
    ("point", "nth"),
    [
        ("file_recorded", 1),  # the tombstones' file durable and recorded
        ("before_commit", 1),  # its manifest written too, the high-water mark not advanced
    ],
)
def test_kill_between_a_tombstone_file_and_its_commit_delivers_each_tombstone_once(
    tmp_path: Path, pg_url: str, aws: Any, point: str, nth: int
) -> None:
    pg_exec(
        pg_url,
        "CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text NOT NULL, "
        "payload text, updated_at timestamptz NOT NULL)",
        "INSERT INTO events SELECT i, CASE WHEN i % 10 = 0 THEN 'other' ELSE 'acme' END, "
        "md5(i::text), now() - interval '1 hour' FROM generate_series(1, 100) AS i",
    )
    config = write_config(tmp_path / "byob.toml", pg_url, [MODEL | {"capture_deletes": True}])
    app = make_services(tmp_path, config, aws)
    _, customer = onboard_s3(app, aws)
    env = _env(tmp_path, config, aws)
    app.deletes.install_capture("events")
    [backfill] = app.transfers.run("c1")
    assert backfill.record.rows == 90
    # 1-5 and 11 are acme's, 10 and 20 another tenant's; 31 changes in the same window.
    pg_exec(
        pg_url,
        "DELETE FROM events WHERE id IN (1, 2, 3, 4, 5, 10, 11, 20)",
        "UPDATE events SET payload = 'changed', updated_at = now() WHERE id = 31",
    )

    killed = _cli(env, "transfers", "run", "c1", "--json", wrapper=(point, nth))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    conn = app.connections.get("c1")
    [interrupted] = app.adapters.state.transfers.pending(conn.id, "events")
    assert interrupted.status == "running"
    retried = _cli(env, "transfers", "run", "c1", "--json")
    assert retried.returncode == 0, retried.stderr
    finished = app.transfers.get(interrupted.id)
    assert finished.status == "succeeded" and finished.attempts == 2 and finished.rows == 7
    assert app.transfers.run("c1")[0].record.rows == 0  # nothing left to deliver again

    con = connect_s3(aws.endpoint_url, **customer.credentials())
    files = "read_parquet('s3://bkt/exports/events/*/*.parquet', hive_partitioning = true)"
    tombstones = con.execute(
        f"SELECT id, count(*), bool_and(payload IS NULL) FROM {files} WHERE _byob_deleted "
        "GROUP BY id ORDER BY id"
    ).fetchall()
    assert tombstones == [(i, 1, True) for i in (1, 2, 3, 4, 5, 11)]
    versions = con.execute(f"SELECT count(*) FROM {files} WHERE id = 31").fetchone()
    assert versions == (2,)  # the backfill's and the change's, once each
    # Only files the manifests list were delivered: none is left over from the killed attempt.
    listed = {
        f.key
        for t in app.adapters.state.transfers.history(conn.id)
        for f in app.adapters.state.transfers.files(t.id)
        if f.state == "committed"
    }
    delivered = {
        o["Key"]
        for o in customer.client("s3")
        .list_objects_v2(Bucket="bkt", Prefix="exports/events/")
        .get("Contents", [])
        if o["Key"].endswith(".parquet")
    }
    assert delivered == listed
