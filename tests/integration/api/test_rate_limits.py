"""Rate limits on a real `byob serve`: an address that keeps failing to sign in is locked out of
every door (API, /login, links) with 429 and Retry-After, and audited; a flood from one address
or on one key is turned away the same way; health checks are never limited.

The server trusts X-Forwarded-For from 127.0.0.1 (uvicorn's default for a local proxy), which
is how these tests come from several addresses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from byob.container import Byob
from byob.settings import load_settings
from tests.browser.conftest import csrf_of
from tests.support import Served, serving

pytestmark = pytest.mark.integration

API = "/api/v1"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("limited")
    with serving(
        # A slow refill: on a loaded machine, 40 requests may take long enough for a faster
        # one to keep a key's budget from ever running out.
        tmp,
        rate_limit_per_second="1",
        rate_limit_burst="20",
        auth_failures_per_minute="3",
    ) as server:
        yield server


def api_key(served: Served, name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "byob.cli", "api-keys", "create", "--name", name, "--json"],
        env=served.env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = json.loads(done.stdout)["token"]
    assert isinstance(token, str)
    return token


def client(served: Served, address: str) -> httpx.Client:
    return httpx.Client(base_url=served.base_url, headers={"X-Forwarded-For": address})


def audit_actions(served: Served) -> list[dict[str, object]]:
    byob = Byob(load_settings(home=served.env["BYOB_HOME"], config=served.env["BYOB_CONFIG"]))
    try:
        return byob.state.audit.recent()
    finally:
        byob.close()


def assert_too_many(answer: httpx.Response, code: str | None = None) -> int:
    assert answer.status_code == 429, answer.text
    retry_after = int(answer.headers["retry-after"])
    assert retry_after >= 1
    if code is not None:
        assert answer.json()["error"]["code"] == code
    return retry_after


def test_an_address_failing_to_sign_in_is_locked_out_of_every_door(limited: Served) -> None:
    key = api_key(limited, "guarded")
    with client(limited, "203.0.113.7") as guesser, client(limited, "203.0.113.8") as other:
        # Three failures in a minute, one at each door.
        bad = {"Authorization": "Bearer byob_key_guessed"}
        assert guesser.get(f"{API}/connections", headers=bad).status_code == 401
        assert guesser.get("/connect/byob_link_guessed").status_code == 404
        form = guesser.get("/login")
        failed = guesser.post(
            "/login", data={"api_key": "byob_key_guessed", "csrf_token": csrf_of(form.text)}
        )
        assert failed.status_code == 401
        # Now even the right key is refused from that address, at every door, for a while.
        good = {"Authorization": f"Bearer {key}"}
        retry_after = assert_too_many(guesser.get(f"{API}/connections", headers=good), "locked_out")
        assert 1 <= retry_after <= 20
        assert_too_many(guesser.get("/connect/byob_link_guessed"))
        page = guesser.post("/login", data={"api_key": key, "csrf_token": "x"})
        assert_too_many(page)
        assert "too many failed sign-ins" in page.text.lower()
        # Pages that sign no one in, health checks and other addresses go on.
        assert guesser.get("/login").status_code == 200
        assert guesser.get("/healthz").status_code == 200
        assert other.get(f"{API}/connections", headers=good).status_code == 200
    [lockout] = [e for e in audit_actions(limited) if e["action"] == "auth.lockout"]
    assert lockout["actor"] == "address:203.0.113.7"
    assert (
        "guessed" not in json.dumps(lockout, default=str)
        and key not in limited.log_path.read_text()
    )


def test_a_flood_from_one_address_or_on_one_key_is_turned_away(limited: Served) -> None:
    key = api_key(limited, "flooded")
    good = {"Authorization": f"Bearer {key}"}
    with client(limited, "198.51.100.1") as flooder:
        answers = [flooder.get(f"{API}/connections", headers=good) for _ in range(40)]
        codes = [a.status_code for a in answers]
        assert codes[:20] == [200] * 20 and 429 in codes, codes
        assert_too_many(next(a for a in answers if a.status_code == 429), "rate_limited")
        assert all(flooder.get("/healthz").status_code == 200 for _ in range(30))
    # The same key from many addresses: the key's own budget holds.
    spent = 0
    for n in range(40):
        with client(limited, f"198.51.100.{10 + n}") as spread:
            answer = spread.get(f"{API}/connections", headers=good)
        if answer.status_code == 429:
            spent += 1
    assert spent > 0
