"""Failure verdicts, backoff, webhook signatures, URLs and delivery failures, and the queue's
retry strategy."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from byob.domain.failures import PERMANENT_AWS_CODES, Verdict, backoff, classify
from byob.domain.outbox import OutboxStatus
from byob.errors import (
    ByobError,
    ConfigError,
    DestinationError,
    SchemaChangeError,
    SourceError,
    TransferError,
)
from byob.settings import load_settings
from byob.store.db import create_engine, migrate
from byob.store.state import StateStore
from byob.workers import queue as q
from byob.workers.webhooks import WebhookDeliverer, sign, verify

# -- classify ------------------------------------------------------------------------------------


def _wrapped(cause: BaseException) -> TransferError:
    try:
        raise TransferError("transfer of model 'invoices' failed") from cause
    except TransferError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (
            DestinationError("AccessDenied on PutObject", aws_code="AccessDenied"),
            Verdict.CONNECTION_FAILING,
        ),
        (DestinationError("no bucket", aws_code="NoSuchBucket"), Verdict.CONNECTION_FAILING),
        (DestinationError("glue denied", aws_code="403"), Verdict.CONNECTION_FAILING),
        (DestinationError("bad key", aws_code="InvalidAccessKeyId"), Verdict.CONNECTION_FAILING),
        (DestinationError("slow down", aws_code="SlowDown"), Verdict.RETRY),
        (DestinationError("timeout", aws_code="RequestTimeout"), Verdict.RETRY),
        (DestinationError("network", aws_code="EndpointConnectionError"), Verdict.RETRY),
        (DestinationError("unknown", aws_code=None), Verdict.RETRY),
        (SchemaChangeError("amount changed from decimal to text"), Verdict.MODEL_FAILING),
        (ConfigError("no such model", field="model"), Verdict.MODEL_FAILING),
        (SourceError("server closed the connection"), Verdict.RETRY),
        (TransferError("failed without a cause"), Verdict.RETRY),
        (ByobError("something"), Verdict.RETRY),
        (OSError("connection reset"), Verdict.RETRY),
        (RuntimeError("unexpected"), Verdict.RETRY),
    ],
    ids=lambda v: getattr(v, "aws_code", None) or type(v).__name__,
)
def test_classify(error: BaseException, verdict: Verdict) -> None:
    assert classify(error) is verdict


@pytest.mark.parametrize(
    ("cause", "verdict"),
    [
        (
            DestinationError("AccessDenied on PutObject", aws_code="AccessDenied"),
            Verdict.CONNECTION_FAILING,
        ),
        (DestinationError("slow down", aws_code="SlowDown"), Verdict.RETRY),
        (SchemaChangeError("type changed"), Verdict.MODEL_FAILING),
        (SourceError("reset"), Verdict.RETRY),
        (ValueError("bad data"), Verdict.RETRY),
    ],
)
def test_classify_follows_the_cause_of_a_wrapped_error(
    cause: BaseException, verdict: Verdict
) -> None:
    wrapped = _wrapped(cause)
    assert wrapped.__cause__ is cause
    assert classify(wrapped) is verdict


def test_classify_follows_a_chain_of_causes() -> None:
    inner = _wrapped(DestinationError("AccessDenied", aws_code="AccessDenied"))
    assert classify(_wrapped(inner)) is Verdict.CONNECTION_FAILING


def test_every_aws_permission_refusal_is_permanent() -> None:
    for code in (
        "AccessDenied",
        "AccessDeniedException",
        "KMS.AccessDeniedException",
        "SignatureDoesNotMatch",
    ):
        assert code in PERMANENT_AWS_CODES
    for code in ("SlowDown", "Throttling", "InternalError", "ServiceUnavailable", "RequestTimeout"):
        assert code not in PERMANENT_AWS_CODES


# -- backoff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "cap"), [(2.0, 300.0), (1.0, 60.0), (0.5, 5.0)])
def test_backoff_stays_within_the_exponential_ceiling(base: float, cap: float) -> None:
    rng = random.Random(1234)
    for attempt in range(1, 16):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        waits = [backoff(attempt, base=base, cap=cap, rng=rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits), (attempt, max(waits), ceiling)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(waits) < ceiling / 4 and max(waits) > ceiling * 3 / 4


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff(n, rng=random.Random(7)) for n in range(1, 10)]
    again = [backoff(n, rng=random.Random(7)) for n in range(1, 10)]
    assert first == again


def test_backoff_is_capped() -> None:
    rng = random.Random(99)
    assert max(backoff(40, rng=rng) for _ in range(1000)) <= 300.0
    assert max(backoff(40, base=1.0, cap=60.0, rng=rng) for _ in range(1000)) <= 60.0


# -- webhook signatures --------------------------------------------------------------------------

SECRET = "whsec-unit"
BODY = b'{"event": "transfer.succeeded", "data": {"rows": 40}}'
STAMP = "1795316400"
NOW = 1795316400.0


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), STAMP.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, STAMP, BODY) == "sha256=" + expected


def test_verify_accepts_a_fresh_good_signature() -> None:
    signature = sign(SECRET, STAMP, BODY)
    assert verify(SECRET, timestamp=STAMP, body=BODY, signature=signature, now=NOW)
    assert verify(SECRET, timestamp=STAMP, body=BODY, signature=signature, now=NOW + 300)
    assert verify(SECRET, timestamp=STAMP, body=BODY, signature=signature, now=NOW - 300)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        (SECRET, STAMP, BODY.replace(b"40", b"41"), NOW),  # tampered body
        (SECRET, STAMP, BODY + b" ", NOW),  # one byte more
        ("another-secret", STAMP, BODY, NOW),  # wrong secret
        (SECRET, STAMP, BODY, NOW + 301),  # stale: a replay
        (SECRET, STAMP, BODY, NOW - 301),  # from the future
        (SECRET, "1795316401", BODY, NOW),  # the timestamp is signed too
    ],
    ids=["tampered", "extended", "wrong-secret", "stale", "future", "other-timestamp"],
)
def test_verify_refuses(secret: str, timestamp: str, body: bytes, now: float) -> None:
    signature = sign(SECRET, STAMP, BODY)
    assert not verify(secret, timestamp=timestamp, body=body, signature=signature, now=now)


@pytest.mark.parametrize("timestamp", ["", "yesterday", "17953164OO", "0x6b"])
def test_verify_refuses_a_non_numeric_timestamp(timestamp: str) -> None:
    signature = sign(SECRET, timestamp, BODY)
    assert verify(SECRET, timestamp=timestamp, body=BODY, signature=signature, now=NOW) is False


def test_verify_refuses_a_malformed_signature() -> None:
    good = sign(SECRET, STAMP, BODY)
    for bad in ("", good.removeprefix("sha256="), "sha1=" + good[7:], good.upper()):
        assert not verify(SECRET, timestamp=STAMP, body=BODY, signature=bad, now=NOW)


# -- the webhook URL and what a delivery makes of a failure --------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.com/byob",  # no scheme: urllib refuses it at every attempt
        "ftp://hooks.example.com/byob",
        "https:///byob",  # no host
        "http://hooks.example.com:http/byob",  # a port that is not a number
    ],
)
def test_a_webhook_url_that_is_not_http_with_a_host_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYOB_WEBHOOK_URL", url)
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path)
    assert info.value.field == "BYOB_WEBHOOK_URL"
    assert info.value.message.startswith("BYOB_WEBHOOK_URL:")
    assert "http:// or https://" in info.value.message


@pytest.mark.parametrize("url", ["https://hooks.example.com/byob", "http://127.0.0.1:9/hook", ""])
def test_an_http_webhook_url_or_none_is_accepted(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYOB_WEBHOOK_URL", url)
    assert load_settings(home=tmp_path).webhook_url == url


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    db = create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    migrate(db)
    yield StateStore(db)
    db.dispose()


@contextmanager
def _not_http_endpoint() -> Iterator[str]:
    """A URL on 127.0.0.1 whose server reads each whole request, then answers an SSH banner
    (a webhook URL pointing at the wrong port): the client fails on the answer, not on a reset
    while sending."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # closing it does not wake a blocked accept()
    done = threading.Event()

    def answer() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            with conn:
                request = b""
                while b"\r\n\r\n" not in request and (chunk := conn.recv(65536)):
                    request += chunk
                head, _, body = request.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                while length and len(body) < int(length[1]) and (chunk := conn.recv(65536)):
                    body += chunk
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        done.set()
        thread.join(timeout=15)
        server.close()


WHEN = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_an_endpoint_answering_garbage_fails_the_attempt_not_the_pass(state: StateStore) -> None:
    ids = [state.outbox.add("transfer.succeeded", {"n": n}, now=WHEN) for n in (1, 2)]
    with _not_http_endpoint() as url:
        deliverer = WebhookDeliverer(
            state, url, SECRET, clock=lambda: WHEN, timeout=10, retry_at=lambda n, now: now
        )
        assert deliverer.deliver_due() == 0
    for event in map(state.outbox.get, ids):  # the second was attempted too
        assert event.status is OutboxStatus.PENDING and event.attempts == 1
        assert event.last_error is not None and "BadStatusLine" in event.last_error
        assert "SSH-2.0" in event.last_error
    assert state.outbox.any_due(now=WHEN)  # no longer claimed: the next pass tries again


def test_a_url_urllib_cannot_use_fails_each_attempt_then_the_event(state: StateStore) -> None:
    # Settings refuse such a URL; a deliverer built with one must still record its failures.
    event_id = state.outbox.add("transfer.succeeded", {"n": 1}, now=WHEN)
    deliverer = WebhookDeliverer(
        state, "hooks.example.com/byob", SECRET, clock=lambda: WHEN, max_attempts=1
    )
    assert deliverer.deliver_due() == 0
    [failed] = state.outbox.page(status=OutboxStatus.FAILED)  # what `webhooks list --failed` shows
    assert failed.id == event_id and failed.attempts == 1
    assert failed.last_error == "ValueError: unknown url type: 'hooks.example.com/byob'"


# -- the queue's retry strategy ------------------------------------------------------------------


@dataclass
class Job:
    attempts: int


def test_transient_failures_are_retried_with_backoff_below_max_attempts() -> None:
    strategy = q.JitteredRetry()
    for attempts in range(q.MAX_ATTEMPTS - 1):
        before = datetime.now(UTC)
        decision = strategy.get_retry_decision(
            exception=q.TransientTransferError("slow down"), job=Job(attempts)
        )
        after = datetime.now(UTC)
        assert decision is not None, attempts
        # Procrastinate turns retry_in into an absolute time: now + backoff(attempts + 1).
        ceiling = timedelta(seconds=min(300.0, 2.0 * 2**attempts))
        assert decision.retry_at is not None
        assert before <= decision.retry_at <= after + ceiling, (
            attempts,
            decision.retry_at - before,
        )


def test_the_last_attempt_is_not_retried() -> None:
    strategy = q.JitteredRetry()
    for attempts in (q.MAX_ATTEMPTS - 1, q.MAX_ATTEMPTS, q.MAX_ATTEMPTS + 5):
        assert (
            strategy.get_retry_decision(exception=q.TransientTransferError("x"), job=Job(attempts))
            is None
        )


@pytest.mark.parametrize(
    "exception",
    [
        SchemaChangeError("type changed"),
        DestinationError("AccessDenied", aws_code="AccessDenied"),
        RuntimeError("a bug"),
        SourceError("not wrapped: the task wraps what it retries"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_failures_are_not_retried(exception: BaseException) -> None:
    assert q.JitteredRetry().get_retry_decision(exception=exception, job=Job(0)) is None


def test_a_worker_waits_out_an_unreachable_database_not_a_wrong_query() -> None:
    import psycopg
    import sqlalchemy as sa
    from procrastinate.exceptions import ConnectorException

    from byob.workers.outages import is_outage

    def wrapped(cause: BaseException) -> ConnectorException:
        try:
            raise ConnectorException() from cause
        except ConnectorException as exc:
            return exc

    assert is_outage(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_outage(ConnectionRefusedError())
    assert is_outage(wrapped(psycopg.OperationalError("terminating connection")))
    assert not is_outage(wrapped(psycopg.errors.UndefinedTable("no such table")))
    assert not is_outage(ValueError("a bug"))
    lost = psycopg.OperationalError("consuming input failed")
    assert is_outage(sa.exc.OperationalError("SELECT 1", {}, lost))
    assert not is_outage(sa.exc.ProgrammingError("SELECT x", {}, psycopg.ProgrammingError()))
