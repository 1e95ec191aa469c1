"""What operators see: signed webhooks (verified as a receiver would, retried with backoff),
Prometheus metrics at /metrics, and JSON log lines that carry the connection and transfer and
never a secret."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from byob import logs
from byob.demo.emulator import LocalAws
from byob.domain.credentials import LINK_PREFIX, new_token
from byob.domain.fixes import recipient_fix
from byob.domain.outbox import OutboxStatus
from byob.errors import ConfigError, SourceError
from byob.services import Services
from byob.web.app import create_app
from byob.workers import queue as q
from byob.workers.runtime import build_runtime
from byob.workers.webhooks import OutboxEvents, WebhookDeliverer, sign, verify
from tests.integration.scheduling.helpers import MODEL, acme_ids, create_invoices, run_local
from tests.receivers import Receiver
from tests.support import (
    activate,
    before_s3_call,
    create,
    free_port,
    make_services,
    onboard_s3,
    validate,
    write_config,
)

pytestmark = pytest.mark.integration

SECRET = "whsec-test-7f3a9c"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET, fail_first=1)
    yield r
    r.close()


# -- a byob with a local destination (no AWS needed) ---------------------------------------------


@pytest.fixture
def app(tmp_path: Path, pg_url: str) -> Iterator[Services]:
    create_invoices(pg_url)
    byob = make_services(tmp_path, write_config(tmp_path / "byob.toml", pg_url, [MODEL]))
    create(byob, name="c1", tenant="acme", type="local", path=str(tmp_path / "out"))
    validate(byob, "c1")
    activate(byob, "c1")
    yield byob
    byob.adapters.close()


# -- webhooks ------------------------------------------------------------------------------------


def _outbox_to(
    app: Services, url: str, *, at_once: bool = True, **options: Any
) -> WebhookDeliverer:
    """Events of ``app`` kept in its outbox and delivered to ``url``; with ``at_once`` a failed
    attempt is due again at once (the backoff itself is the domain's, tested in unit tests)."""
    if at_once:
        options["retry_at"] = lambda n, now: now
    deliverer = WebhookDeliverer(app.adapters.state, url, SECRET, clock=app.now, **options)
    app.adapters.events = OutboxEvents(app.adapters.state, app.now, deliverer)
    return deliverer


def test_webhooks_are_signed_retried_and_verifiable(app: Services, receiver: Receiver) -> None:
    deliverer = _outbox_to(app, receiver.url)
    run_local(app)
    app.connections.mark_failing(
        app.connections.get("c1"),
        check="transfer",
        message="AccessDenied on PutObject to s3://bkt/x",
    )
    assert receiver.received == []  # kept in the outbox until a deliverer runs
    deliverer.drain(timeout=30)

    got = receiver.received
    # Each event is attempted in order; a retried one may arrive after later ones.
    assert [(r.event, r.status) for r in got] == [
        ("transfer.succeeded", 500),
        ("connection.failing", 200),
        ("transfer.succeeded", 200),
    ]
    got = [got[0], got[2], got[1]]
    assert all(r.verified for r in got), got
    assert all(r.content_type == "application/json" for r in got)
    assert got[0].body == got[1].body  # the retry sends the same event, with the same id
    assert all(re.fullmatch(r"sha256=[0-9a-f]{64}", r.signature) for r in got)

    succeeded = json.loads(got[1].body)
    conn = app.connections.get("c1")
    [record] = app.adapters.state.transfers.history(conn.id)
    events = {e.event: e for e in app.adapters.state.outbox.page()}
    assert succeeded["id"] == events["transfer.succeeded"].id  # receivers deduplicate on it
    assert events["transfer.succeeded"].attempts == 2
    assert {e.status.value for e in events.values()} == {"delivered"}
    assert succeeded["event"] == "transfer.succeeded"
    assert succeeded["data"]["connection"] == "c1" and succeeded["data"]["tenant"] == "acme"
    assert succeeded["data"]["transfer"]["id"] == record.id
    assert succeeded["data"]["transfer"]["rows"] == len(acme_ids()) == record.rows
    assert succeeded["data"]["transfer"]["status"] == "succeeded"
    failing = json.loads(got[2].body)
    assert failing["event"] == "connection.failing"
    assert failing["data"] == {
        "connection": "c1",
        "connection_id": conn.id,
        "tenant": "acme",
        "check": "transfer",
        "message": "AccessDenied on PutObject to s3://bkt/x",
        "fix": recipient_fix("transfer"),  # what the recipient does about it
    }

    # What a receiver must refuse: a changed body, another secret, a replay, a forged stamp.
    r = got[2]
    now = float(r.timestamp)
    assert verify(SECRET, timestamp=r.timestamp, body=r.body, signature=r.signature, now=now)
    tampered = r.body.replace(b"AccessDenied", b"AccessGranted")
    assert tampered != r.body
    assert not verify(SECRET, timestamp=r.timestamp, body=tampered, signature=r.signature, now=now)
    assert not verify(
        "another-secret", timestamp=r.timestamp, body=r.body, signature=r.signature, now=now
    )
    assert not verify(
        SECRET, timestamp=r.timestamp, body=r.body, signature=r.signature, now=now + 301
    )
    later = str(int(now) + 1)
    assert not verify(SECRET, timestamp=later, body=r.body, signature=r.signature, now=now)
    assert verify(
        SECRET, timestamp=later, body=r.body, signature=sign(SECRET, later, r.body), now=now
    )


def test_a_failing_receiver_is_retried_then_given_up_and_redelivered(
    app: Services, receiver: Receiver
) -> None:
    receiver.fail_first = 4
    deliverer = _outbox_to(app, receiver.url, max_attempts=4)
    run_local(app)
    deliverer.drain(timeout=30)
    assert [r.status for r in receiver.received] == [500] * 4
    [given_up] = app.adapters.state.outbox.page(status=OutboxStatus.FAILED)
    assert given_up.attempts == 4 and given_up.last_error == "HTTP 500"

    app.adapters.state.outbox.redeliver(given_up.id, now=app.now())
    deliverer.drain(timeout=30)
    assert receiver.received[-1].status == 200
    assert app.adapters.state.outbox.get(given_up.id).status is OutboxStatus.DELIVERED


def test_events_outlive_the_process_that_wrote_them(
    app: Services, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.fail_first = 0
    # The first process's endpoint is down: its event stays in the state store.
    down = _outbox_to(app, f"http://127.0.0.1:{free_port()}/hook", at_once=False)
    run_local(app)
    down.drain(timeout=10)
    [waiting] = app.adapters.state.outbox.page()
    assert waiting.status is OutboxStatus.PENDING and waiting.attempts == 1
    assert "refused" in (waiting.last_error or "").lower()

    # Another process on the same state store (a restart) delivers it.
    later = make_services(
        tmp_path,
        Path(str(app.adapters.settings.config)),
        database_url=app.adapters.settings.state_url,
    )
    due = app.adapters.state.outbox.get(waiting.id).next_attempt_at  # backoff: 5-10 s on
    later.adapters.clock = lambda: due  # type: ignore[attr-defined]
    _outbox_to(later, receiver.url).drain(timeout=10)
    assert [(r.event, r.status) for r in receiver.received] == [("transfer.succeeded", 200)]
    assert json.loads(receiver.received[0].body)["id"] == waiting.id


def test_the_runtime_wires_the_webhook_from_settings(tmp_path: Path) -> None:
    config = write_config(tmp_path / "byob.toml", f"sqlite:///{tmp_path / 'src.sqlite'}", [])
    app = make_services(
        tmp_path, config, webhook_url="http://127.0.0.1:9/hook", webhook_secret=SECRET
    )
    runtime = build_runtime(app)
    try:
        assert isinstance(app.adapters.events, OutboxEvents)
        assert app.adapters.events.deliverer._thread is not None  # delivering in the background
        assert app.transfers.dispatcher is runtime.dispatcher
    finally:
        runtime.stop()
        app.adapters.close()
    unsigned = make_services(tmp_path / "b", config, webhook_url="http://127.0.0.1:9/hook")
    try:
        with pytest.raises(ConfigError, match="BYOB_WEBHOOK_SECRET"):
            build_runtime(unsigned)
    finally:
        unsigned.adapters.close()


# -- metrics -------------------------------------------------------------------------------------


def _scrape(api: Any) -> Any:
    """GET /metrics in-process."""
    from fastapi.testclient import TestClient

    with TestClient(api) as client:
        return client.get("/metrics")


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in:\n{text}"
    return float(match.group(1))


def test_metrics_report_transfers_rows_bytes_durations_and_the_queue(app: Services) -> None:
    workers = run_local(app)
    conn = app.connections.get("c1")
    [record] = app.adapters.state.transfers.history(conn.id)
    # A planned transfer that is cancelled before it runs counts as cancelled.
    with app.adapters.source() as src:
        _, planned = app.adapters.runner(conn, src).prepare(
            app.adapters.models_file.model("invoices")
        )
    app.transfers.cancel(planned[-1].id, actor="cli")

    app.transfers.dispatcher = workers
    response = _scrape(create_app(app))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'byob_transfers{status="succeeded"} 1.0' in text
    assert 'byob_transfers{status="cancelled"} 1.0' in text
    assert _metric(text, "byob_rows_delivered_total") == record.rows == len(acme_ids())
    assert _metric(text, "byob_bytes_delivered_total") == record.bytes > 0
    assert 'byob_transfer_duration_seconds_bucket{le="+Inf"} 1.0' in text
    assert re.search(
        r'^byob_transfer_duration_seconds_bucket\{le="1\.0"\} [01]\.0$', text, re.MULTILINE
    )
    assert _metric(text, "byob_transfer_duration_seconds_count") == 1.0
    assert _metric(text, "byob_transfer_duration_seconds_sum") >= 0
    assert _metric(text, "byob_queue_depth") == 0.0
    assert _metric(text, "byob_queue_oldest_age_seconds") == 0.0


def test_metrics_report_the_postgresql_queue_depth_and_oldest_waiting_job(
    tmp_path: Path, pg_url: str, state_pg_url: str
) -> None:
    create_invoices(pg_url)
    app = make_services(
        tmp_path, write_config(tmp_path / "byob.toml", pg_url, [MODEL]), database_url=state_pg_url
    )
    try:
        for name in ("c1", "c2"):
            create(app, name=name, tenant="acme", type="local", path=str(tmp_path / name))
            validate(app, name)
            activate(app, name)
        jobs = q.make_queue(state_pg_url)
        q.ensure_schema(jobs, app.adapters.state)
        app.transfers.dispatcher = dispatcher = q.QueueDispatcher(app, jobs)  # opens the queue
        try:
            assert q.defer_transfer(jobs, app.connections.get("c1"), "invoices")
            assert q.defer_transfer(jobs, app.connections.get("c2"), "invoices")
            # The first job has waited five minutes.
            jobs.connector.get_sync_connector().execute_query(
                "UPDATE procrastinate_events SET at = now() - interval '5 minutes' "
                "WHERE type = 'deferred' AND job_id = (SELECT min(id) FROM procrastinate_jobs)"
            )
            text = _scrape(create_app(app)).text
        finally:
            dispatcher.shutdown()
        assert _metric(text, "byob_queue_depth") == 2.0
        assert 300 <= _metric(text, "byob_queue_oldest_age_seconds") < 360
        assert "byob_transfers{" not in text  # nothing ran yet
        assert _metric(text, "byob_rows_delivered_total") == 0.0
    finally:
        app.adapters.close()


# -- logs ----------------------------------------------------------------------------------------

TOKEN = "byob_key_" + "Q7x" * 13 + "Z"  # an API key: byob_key_ and 40 characters
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # 40 characters
assert len(TOKEN) == 49 and len(AWS_SECRET) == 40
LINK = new_token(LINK_PREFIX)  # a connection link's token, as recipients open it
DB_PASSWORD = "hunter2pass"
SECRETS = (TOKEN, AWS_SECRET, LINK, DB_PASSWORD, "abcd1234efgh5678")


class JsonLogs:
    """byob's logging (JSON lines unless told) on pytest's captured stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def start(self, *, json_lines: bool = True) -> None:
        # Called in the test body: pytest swaps the captured stderr between setup and call.
        logs.configure(json_lines=json_lines)
        self.capsys.readouterr()

    def entries(self) -> tuple[str, list[dict[str, Any]]]:
        err = self.capsys.readouterr().err
        return err, _entries(err)


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[JsonLogs]:
    """The root logger is restored afterwards (configure replaces its handlers)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        yield JsonLogs(capsys)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def _entries(err: str) -> list[dict[str, Any]]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    bad = [line for line in lines if not line.startswith("{")]
    assert not bad, "\n".join(bad[:40])
    return [json.loads(line) for line in lines]  # every line is one JSON object


def _log_secrets_outside_a_transfer() -> None:
    """Lines logged outside any transfer with secrets in them: uvicorn's access line for a
    recipient opening a connection link (`byob serve` sends it through the root handler), and
    an exception holding a database URL with its password."""
    # As uvicorn's HTTP protocols log each request.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50312", "GET", f"/connect/{LINK}", "1.1", 200
    )
    try:
        raise RuntimeError(
            f"cannot connect to postgresql://byob:{DB_PASSWORD}@db:5432/x with {TOKEN}"
        )
    except RuntimeError:
        logging.getLogger("byob.test.outside").exception(
            "failed: aws_secret_access_key = %s",
            AWS_SECRET,
            extra={"fields": {"url": f"postgresql://byob:{DB_PASSWORD}@db/x", "link": LINK}},
        )


def test_log_lines_are_json_with_the_transfer_and_no_secrets(
    tmp_path: Path, pg_url: str, aws: LocalAws, json_logs: JsonLogs
) -> None:
    json_logs.start()
    create_invoices(pg_url)
    app = make_services(tmp_path, write_config(tmp_path / "byob.toml", pg_url, [MODEL]), aws)
    inside = logging.getLogger("byob.test.inside")

    def log_upload(**_: Any) -> None:
        # A line logged by anything running inside the transfer, with secrets in it.
        inside.info(
            "uploading with token %s and secret_access_key=abcd1234efgh5678 and %s",
            TOKEN,
            AWS_SECRET,
        )

    try:
        conn, _ = onboard_s3(app, aws)
        before_s3_call(app, "PutObject", log_upload)
        run_local(app, conn.name)
        _log_secrets_outside_a_transfer()
        [record] = app.adapters.state.transfers.history(conn.id)
    finally:
        app.adapters.close()

    err, entries = json_logs.entries()
    for secret in SECRETS:
        assert secret not in err
    during = [e for e in entries if e["logger"] == "byob.test.inside"]
    assert len(during) == 3  # the data file, schema.json and the manifest
    for e in during:
        assert (e["connection"], e["tenant"], e["model"], e["transfer"]) == (
            conn.name,
            "acme",
            "invoices",
            record.id,
        )
        assert e["level"] == "info" and e["at"].endswith("+00:00")
        assert "byob_key_[redacted]" in e["message"]
        assert "secret_access_key=[redacted]" in e["message"]
        assert "[redacted-40]" in e["message"]
    [outside] = [e for e in entries if e["logger"] == "byob.test.outside"]
    assert "connection" not in outside and "transfer" not in outside  # not inside a transfer
    assert "[redacted]" in outside["message"] and "exception" in outside
    assert "RuntimeError" in outside["exception"] and "byob:[redacted]@db" in outside["exception"]
    assert (outside["url"], outside["link"]) == (
        "postgresql://byob:[redacted]@db/x",
        "byob_link_[redacted]",
    )
    [access] = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert '"GET /connect/byob_link_[redacted] HTTP/1.1" 200' in access["message"]


def test_text_log_lines_hold_no_secrets_either(json_logs: JsonLogs) -> None:
    json_logs.start(json_lines=False)
    logging.getLogger("byob.test.inside").info(
        "uploading with token %s and secret_access_key=abcd1234efgh5678 and %s", TOKEN, AWS_SECRET
    )
    _log_secrets_outside_a_transfer()
    err = json_logs.capsys.readouterr().err

    for secret in SECRETS:
        assert secret not in err
    assert (
        "INFO byob.test.inside: uploading with token byob_key_[redacted] and "
        "secret_access_key=[redacted] and [redacted-40]\n"
    ) in err
    assert (
        'INFO uvicorn.access: 127.0.0.1:50312 - "GET /connect/byob_link_[redacted] HTTP/1.1" 200\n'
    ) in err
    assert "ERROR byob.test.outside: failed: aws_secret_access_key = [redacted]\n" in err
    # The traceback follows its line, redacted too.
    assert "Traceback (most recent call last):" in err
    assert "RuntimeError: cannot connect to postgresql://byob:[redacted]@db:5432/x" in err


@contextmanager
def _flaky_source(app: Services) -> Iterator[list[int]]:
    """The source's first read logs a line and fails (a transient SourceError); later reads log
    and succeed. Yields the number of reads so far."""
    original = app.adapters.source
    reads = [0]

    @contextmanager
    def source() -> Iterator[Any]:
        with original() as src:
            real_read = src.read

            def read(model: Any, tenant: str, window: Any) -> Iterator[Any]:
                reads[0] += 1
                logging.getLogger("byob.test.reader").info("reading %s", model.name)
                if reads[0] == 1:
                    raise SourceError("server closed the connection unexpectedly")
                yield from real_read(model, tenant, window)

            src.read = read  # type: ignore[method-assign]
            yield src

    app.adapters.source = source  # type: ignore[method-assign]
    yield reads


def _run_with_one_retry(app: Services, json_logs: JsonLogs) -> tuple[Any, list[dict[str, Any]]]:
    """One transfer through the embedded workers whose first read fails: the record and the
    JSON log lines written meanwhile."""
    json_logs.start()
    with _flaky_source(app) as reads:
        run_local(app)
    assert reads[0] == 2
    [record] = app.adapters.state.transfers.history(app.connections.get("c1").id)
    return record, json_logs.entries()[1]


def test_the_retry_warning_carries_the_connection_and_transfer(
    app: Services, json_logs: JsonLogs
) -> None:
    record, entries = _run_with_one_retry(app, json_logs)
    assert record.status == "succeeded"
    [warning] = [e for e in entries if e["logger"] == "byob.transfers" and e["level"] == "warning"]
    assert "failed (attempt 1" in warning["message"]
    assert (warning.get("connection"), warning.get("transfer")) == ("c1", record.id)


def test_lines_logged_while_reading_the_source_carry_the_transfer(
    app: Services, json_logs: JsonLogs
) -> None:
    record, entries = _run_with_one_retry(app, json_logs)
    reading = [e for e in entries if e["logger"] == "byob.test.reader"]
    assert len(reading) == 2
    for e in reading:
        assert (e.get("connection"), e.get("transfer")) == ("c1", record.id)


def test_a_finished_transfer_logs_one_line_with_its_figures(
    app: Services, json_logs: JsonLogs
) -> None:
    json_logs.start()
    run_local(app)
    [record] = app.adapters.state.transfers.history(app.connections.get("c1").id)
    _, entries = json_logs.entries()
    [line] = [e for e in entries if e["logger"] == "byob.transfers" and e["level"] == "info"]
    assert "succeeded" in line["message"]
    assert {k: line[k] for k in ("connection", "tenant", "model", "transfer", "kind")} == {
        "connection": "c1",
        "tenant": "acme",
        "model": "invoices",
        "transfer": record.id,
        "kind": "full_refresh",
    }
    assert (line["rows"], line["files"], line["bytes"]) == (record.rows, record.files, record.bytes)
    assert line["window_low"] is None and line["window_high"] == record.window.high.isoformat()
    assert line["seconds"] >= 0 and line["status"] == "succeeded"
