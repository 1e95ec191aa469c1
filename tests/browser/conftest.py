"""Browser tests: a real `byob serve` (PostgreSQL source, the AWS emulator) driven through
Debian's chromium by Playwright. Screenshots of every step land in artifacts/screenshots/;
the README's pictures (readme_pictures.py) in docs/screenshots/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from byob.demo.emulator import LocalAws
from tests.browser.readme_pictures import FOLDER as README_FOLDER
from tests.browser.readme_pictures import README_PICTURES
from tests.support import create_invoices, free_port, scratch_database, wait_healthy, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BYOB = [sys.executable, "-m", "byob.cli"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ACME_ROWS = 25  # invoices of tenant acme in the source (globex has as many)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real Chromium against `byob serve`")


def assert_fits(page: Any) -> None:
    """Nothing makes the whole page scroll sideways (wide tables scroll inside their box)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{page.url} is {width} px wide on a {viewport} px screen"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


@dataclass
class Served:
    """A running `byob serve` and the CLI over the same state."""

    base_url: str
    env: dict[str, str]
    home: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def cli(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [*BYOB, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    ops_token: str = ""  # an operator key made when the server started

    def operator_key(self) -> str:
        """A new operator key, made with `byob api-keys create`."""
        return str(
            self.cli("api-keys", "create", "--name", f"ops-{uuid.uuid4().hex[:8]}", "--json")[
                "token"
            ]
        )

    def link(self, tenant: str, *, via_cli: bool = False) -> dict[str, Any]:
        """A connection link, from `byob links create` or (faster) the REST API."""
        if via_cli:
            return self.cli("links", "create", "--tenant", tenant, "--json")
        return self.api("post", "/api/v1/links", json={"tenant": tenant})

    def revoke_link(self, link_id: str) -> None:
        self.api("post", f"/api/v1/links/{link_id}/revoke")

    def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.ops_token}"}
        response = httpx.request(
            method, self.base_url + path, headers=headers, timeout=60, **kwargs
        )
        assert response.status_code < 300, response.text
        return dict(response.json())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def source_url(pg_server_url: str) -> Iterator[str]:
    """The vendor's source: invoices of tenants acme and globex."""
    with scratch_database(pg_server_url, "src") as url:
        create_invoices(url, rows=2 * ACME_ROWS, is_acme=lambda i: i % 2 == 1)
        yield url


@contextmanager
def serving(
    tmp: Path, source_url: str, endpoint_url: str, *, imports: str = "", **extra_env: str
) -> Iterator[Served]:
    """`python -m byob.cli serve` on a free port, over its own state in `tmp`; ``imports``:
    ``[[imports]]`` entries the models file declares too."""
    config = write_config(
        tmp / "byob.toml",
        source_url,
        [
            {
                "name": "invoices",
                "table": "invoices",
                "tenant_column": "tenant_id",
                "cursor_column": "updated_at",
                "primary_key": ["id"],
            }
        ],
    )
    config.write_text(config.read_text() + imports)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = (
        dict(os.environ)
        | {
            "BYOB_HOME": str(tmp / ".byob"),
            "BYOB_CONFIG": str(config),
            "BYOB_AWS_ENDPOINT_URL": endpoint_url,
            "BYOB_SETTLE_LAG_SECONDS": "0",
            "BYOB_PUBLIC_URL": base_url,
            "BYOB_AWS_MAX_ATTEMPTS": "2",
            "BYOB_CHECK_TIMEOUT_SECONDS": "20",
        }
        | extra_env
    )
    # Before serving: this first command also creates and migrates the state store.
    made = subprocess.run(
        [*BYOB, "api-keys", "create", "--name", "ops", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    log_path = tmp / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*BYOB, "serve", "--host", "127.0.0.1", "--port", str(port), "--tick", "1"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    srv = Served(
        base_url=base_url,
        env=env,
        home=tmp / ".byob",
        log_path=log_path,
        process=process,
        ops_token=json.loads(made.stdout)["token"],
    )
    try:
        wait_healthy(srv.base_url, srv.process, srv.log_path)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, source_url: str, _aws_server: LocalAws
) -> Iterator[Served]:
    """A server shared by the tests of a module: each test uses its own tenant, and the
    function-scoped `aws` fixture wipes the emulator."""
    with serving(
        tmp_path_factory.mktemp("browser-serve"), source_url, _aws_server.endpoint_url
    ) as srv:
        yield srv


@pytest.fixture
def strict_served(tmp_path: Path, source_url: str, aws: LocalAws) -> Iterator[Served]:
    """A server of its own whose AWS identity is a real IAM user of the emulator, so a test
    can switch IAM enforcement on (which refuses the emulator's dummy keys)."""
    with serving(tmp_path, source_url, aws.endpoint_url, **aws.create_service_user()) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(reason="no /usr/bin/chromium: run scripts/ensure-chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def readme_shot(page: Any, name: str) -> Path:
    """docs/screenshots/<name>.png: the README's picture of this page, its whole length at the
    desktop width (the same size on every run)."""
    assert name in README_PICTURES, f"{name!r} is not in README_PICTURES"
    assert page.viewport_size == DESKTOP, f"README pictures are shot at {DESKTOP}"
    README_FOLDER.mkdir(parents=True, exist_ok=True)
    path = README_FOLDER / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Iterator[Any]:
    """shoot(page, "step") saves artifacts/screenshots/<test>-<nn>-<step>.png (full page);
    when the test fails, every page it shot is saved once more as it was at the failure.
    shoot(page, "step", readme="name") also rewrites the README's picture
    docs/screenshots/<name>.png (one of README_PICTURES), on the desktop viewport."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
    for old in SCREENSHOTS.glob(f"{test}-*.png"):
        old.unlink()
    counter = iter(range(1, 1000))
    pages: list[Any] = []

    def take(page: Any, step: str, *, readme: str | None = None) -> Path:
        if page not in pages:
            pages.append(page)
        path = SCREENSHOTS / f"{test}-{next(counter):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        if readme is not None:
            readme_shot(page, readme)
        return path

    yield take
    if request.node.stash.get(_FAILED, False):
        for page in pages:
            if not page.is_closed():
                take(page, "at-failure")
