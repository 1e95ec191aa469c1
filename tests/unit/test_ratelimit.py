"""Token buckets and the guard built on them: budgets per address and per credential, and the
lockout of an address that keeps failing to sign in, audited once per episode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from byob.container import Byob
from byob.domain.ratelimit import Buckets, Rate
from byob.services.guard import GuardService
from byob.settings import load_settings


def test_a_bucket_gives_its_burst_then_refills_at_its_rate() -> None:
    buckets = Buckets(Rate(per_second=2, burst=3))
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)  # one token comes in half a second
    assert buckets.take("b", 0.0) == 0.0  # keys are independent
    assert buckets.take("a", 0.5) == 0.0 and buckets.take("a", 0.5) == pytest.approx(0.5)
    assert buckets.level("a", 100.0) == 3  # never above the burst


def test_a_refused_take_spends_nothing_and_a_charge_counts_whatever_the_level() -> None:
    buckets = Buckets(Rate.per_minute(6))  # 6 at once, one more every 10 s
    for _ in range(6):
        buckets.charge("a", 0.0)
    assert buckets.level("a", 0.0) == 0 and buckets.wait("a", 0.0) == pytest.approx(10)
    assert buckets.charge("a", 1.0) == 0  # overdrawn: still counted, never below 0
    assert buckets.wait("a", 1.0) == pytest.approx(10)  # the clock restarted at the charge
    for _ in range(5):
        buckets.take("a", 1.0)
    assert buckets.wait("a", 11.0) == 0.0


def test_a_zero_rate_admits_everything() -> None:
    buckets = Buckets(Rate(per_second=0, burst=0))
    assert all(buckets.take("a", 0.0) == 0.0 for _ in range(1000))
    assert len(buckets) == 0


def test_only_the_most_recently_used_keys_are_remembered() -> None:
    buckets = Buckets(Rate(per_second=1, burst=1), max_keys=100)
    for n in range(10_000):  # a flood of distinct (spoofed) keys
        buckets.take(f"k{n}", 0.0)
    assert len(buckets) == 100
    assert buckets.take("k9999", 0.0) > 0  # a recent key is still held to its budget
    assert buckets.take("k0", 0.0) == 0.0  # a forgotten one starts full


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[GuardService, Clock, Byob]]:
    settings = load_settings(
        home=tmp_path / ".byob",
        rate_limit_per_second=1,
        rate_limit_burst=5,
        auth_failures_per_minute=3,
    )
    byob = Byob(settings)
    byob.migrate()
    clock = Clock()
    yield GuardService(byob, monotonic=clock), clock, byob
    byob.close()


def fail(guard: GuardService, address: str, where: str) -> None:
    if guard.failed_sign_in(address):
        guard.lockout(address, where=where)


def lockouts(byob: Byob) -> list[dict[str, object]]:
    return [e for e in byob.state.audit.recent() if e["action"] == "auth.lockout"]


def test_an_address_failing_to_sign_in_is_locked_out_and_audited_once(
    guarded: tuple[GuardService, Clock, Byob],
) -> None:
    guard, clock, byob = guarded
    for _ in range(2):
        assert guard.admit("10.0.0.1", "byob_key_guess", signing_in=True) is None
        fail(guard, "10.0.0.1", "/api/v1/connections")
    assert lockouts(byob) == []
    fail(guard, "10.0.0.1", "/login")  # the third in a minute
    refusal = guard.admit("10.0.0.1", "byob_key_the_right_one", signing_in=True)
    assert refusal is not None and refusal.lockout and refusal.retry_after == 20
    assert "failed sign-ins from 10.0.0.1" in refusal.reason
    # Requests that are not sign-ins, and other addresses, go on.
    assert guard.admit("10.0.0.1", None, signing_in=False) is None
    assert guard.admit("10.0.0.2", "byob_key_guess", signing_in=True) is None
    # More failures in the episode (from requests in flight) add no audit entry.
    fail(guard, "10.0.0.1", "/login")
    [entry] = lockouts(byob)
    assert entry["actor"] == "address:10.0.0.1"
    assert entry["changes"] == {"address": "10.0.0.1", "failures_per_minute": 3, "where": "/login"}
    assert "guess" not in str(entry) and "right_one" not in str(entry)
    clock.now += 20
    assert guard.admit("10.0.0.1", "byob_key_the_right_one", signing_in=True) is None
    # Locked out again over a minute later: a new episode, a new entry.
    clock.now += 60
    for _ in range(3):
        fail(guard, "10.0.0.1", "/connect/byob_link_x")
    assert len(lockouts(byob)) == 2


def test_each_address_and_each_credential_has_a_request_budget(
    guarded: tuple[GuardService, Clock, Byob],
) -> None:
    guard, clock, _ = guarded
    for _ in range(5):
        assert guard.admit("10.0.0.1", None, signing_in=False) is None
    refusal = guard.admit("10.0.0.1", None, signing_in=False)
    assert refusal is not None and not refusal.lockout and refusal.retry_after == 1
    # One credential used from many addresses is held to its own budget.
    for n in range(5):
        assert guard.admit(f"10.1.0.{n}", "byob_key_shared", signing_in=True) is None
    refusal = guard.admit("10.1.0.9", "byob_key_shared", signing_in=True)
    assert refusal is not None and refusal.reason.startswith("too many requests")
    clock.now += 1
    assert guard.admit("10.1.0.9", "byob_key_shared", signing_in=True) is None
