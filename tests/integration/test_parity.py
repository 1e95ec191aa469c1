"""Every front door tells the same truth. The same operations — create, validate (fail), update,
validate (pass), activate, run, pause, resume, run into a withdrawn permission, cancel — go
through the CLI (a real `byob` process), the REST API and the web pages (the FastAPI app
in-process), each door on a state store of its own. After each operation the three agree on
the connection's state (read back through the door itself and from the store), on the audit
entries it added, on /metrics, and at the end on the webhooks the operator received."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.container import Byob
from byob.demo.emulator import CustomerAccount, LocalAws
from byob.domain.credentials import parse_lifetime
from byob.domain.fixes import recipient_fix
from byob.domain.transfers import TransferStatus, cancel_outcome
from byob.services import Services
from byob.settings import load_settings
from byob.web.app import create_app
from byob.workers.local import LocalWorkers
from tests.receivers import Receiver
from tests.support import CUSTOMER, INVOICES_MODEL, create_invoices, write_config

pytestmark = pytest.mark.integration

SECRET = "whsec-parity"
NAME = "parity"
BUCKET = "parity-bkt"
MODEL = INVOICES_MODEL
ACME_ROWS = 40  # ids not divisible by 3, of 60
# The scenario cancels a failed transfer: not cancelled yet, but when a run next takes it up.
FAILED_CANCEL = cancel_outcome(TransferStatus.FAILED)
FIELDS = {
    "name": NAME,
    "tenant": "acme",
    "type": "s3",
    "account_id": CUSTOMER,
    "bucket": BUCKET,
    "region": "us-east-1",
    "base_path": "exports",
}


# -- the three doors -------------------------------------------------------------------------------


@dataclass
class Door:
    """One front door over its own state store, and what the test needs to inspect it."""

    name: str
    settings: dict[str, Any]
    keys: dict[str, str]  # byob's own AWS identity (an IAM user the emulator knows)
    receiver: Receiver
    byob: Byob = field(init=False)  # adapters on the door's state store, to inspect it
    services: Services = field(init=False)
    audited: int = 0  # audit entries seen so far

    def __post_init__(self) -> None:
        self.byob = _container(self.settings, self.keys)
        self.byob.migrate()
        self.services = Services(self.byob)

    # operations: each door implements them its own way
    def create(self) -> dict[str, Any]:  # the IAM material to paste
        raise NotImplementedError

    def update(self, base_path: str) -> None:
        raise NotImplementedError

    def validate(self) -> bool:
        raise NotImplementedError

    def act(self, action: str) -> None:  # activate, pause, resume
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError

    def cancel(self, transfer_id: str) -> None:
        raise NotImplementedError

    def shown(self) -> dict[str, Any]:
        """The connection as this door shows it, reduced to what every door must agree on."""
        raise NotImplementedError

    def close(self) -> None:
        self.byob.close()


def _container(settings: dict[str, Any], keys: dict[str, str]) -> Byob:
    session = boto3.Session(
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    return Byob(
        load_settings(**settings),
        aws=AwsSessions(
            AwsConfig(endpoint_url=settings["aws_endpoint_url"], max_attempts=2), session
        ),
    )


class CliDoor(Door):
    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = (
            dict(os.environ)
            | self.keys
            | {f"BYOB_{k.upper()}": str(v) for k, v in self.settings.items()}
        )
        done = subprocess.run(
            [sys.executable, "-m", "byob.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def create(self) -> dict[str, Any]:
        args = [f"--{k.replace('_', '-')}={v}" for k, v in FIELDS.items()]
        return dict(json.loads(self.cli("connections", "create", *args, "--json").stdout))

    def update(self, base_path: str) -> None:
        self.cli("connections", "update", NAME, f"--base-path={base_path}", "--json")

    def validate(self) -> bool:
        done = self.cli("connections", "validate", NAME, "--json", ok=False)
        assert done.returncode == (0 if json.loads(done.stdout)["passed"] else 1), done.stderr
        return bool(json.loads(done.stdout)["passed"])

    def act(self, action: str) -> None:
        self.cli("connections", action, NAME, "--json")

    def run(self) -> None:
        self.cli("transfers", "run", NAME, "--json", ok=False)

    def cancel(self, transfer_id: str) -> None:
        said = self.cli("transfers", "cancel", transfer_id).stdout
        assert " ".join(said.split()) == f"Transfer {transfer_id} {FAILED_CANCEL}.", said

    def shown(self) -> dict[str, Any]:
        [view] = json.loads(self.cli("connections", "list", "--json").stdout)["connections"]
        return essentials(view)

    def shown_alone(self) -> dict[str, Any]:
        return dict(
            json.loads(self.cli("connections", "show", NAME, "--json").stdout)["connection"]
        )


class InProcessDoor(Door):
    """The FastAPI app in-process, with embedded workers: what `byob serve` runs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        from fastapi.testclient import TestClient

        self.workers = LocalWorkers(self.services, sleep=lambda _: None)
        self.services.transfers.dispatcher = self.workers
        self.client = TestClient(create_app(self.services))
        self.token = self.services.api_keys.create("ops")[1]

    def wait(self) -> None:
        for future in list(self.workers.futures):
            future.result(timeout=120)

    def close(self) -> None:
        self.client.close()
        self.workers.shutdown()
        super().close()


class RestDoor(InProcessDoor):
    def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.client.request(
            method, f"/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"}, **kwargs
        )
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def create(self) -> dict[str, Any]:
        conn = self.call("POST", "/connections", 201, json=FIELDS)
        return {"connection": conn, **self.call("GET", f"/connections/{NAME}/policies")}

    def update(self, base_path: str) -> None:
        self.call("PATCH", f"/connections/{NAME}", json={"base_path": base_path})

    def validate(self) -> bool:
        return bool(self.call("POST", f"/connections/{NAME}/validate")["passed"])

    def act(self, action: str) -> None:
        self.call("POST", f"/connections/{NAME}/{action}")

    def run(self) -> None:
        self.call("POST", "/transfers", 202, json={"connection": NAME})
        self.wait()

    def cancel(self, transfer_id: str) -> None:
        self.call("POST", f"/transfers/{transfer_id}/cancel", 202)  # requested

    def shown(self) -> dict[str, Any]:
        view = self.call("GET", f"/connections/{NAME}")
        [listed] = self.call("GET", "/connections")["items"]
        assert listed == view
        return essentials(view)


class WebDoor(InProcessDoor):
    """The operator's pages, and the recipient's wizard where only it creates and changes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        link, token = self.services.links.create(
            "acme", lifetime=parse_lifetime("7d"), actor="operator:ops"
        )
        self.link_id = link.id
        self.audited = 1  # the link's own entry is setup, not an operation
        landing = self.client.get(f"/connect/{token}")  # swaps the token for a session cookie
        assert landing.status_code == 200, landing.text
        form = self.client.get("/login")
        signed_in = self.client.post(
            "/login", data={"api_key": self.token, "csrf_token": csrf_of(form.text)}
        )
        assert signed_in.status_code == 200 and "Manage Connections" in signed_in.text

    def post(self, path: str, page: str, data: dict[str, str] | None = None) -> Any:
        """Submit a form as a browser would: with the CSRF token of the page it is on."""
        token = csrf_of(self.client.get(page).text)
        response = self.client.post(path, data={**(data or {}), "csrf_token": token})
        assert response.status_code in (200, 409), response.text[:3000]
        return response

    def bucket_form(self, base_path: str) -> dict[str, str]:
        values = {k: v for k, v in FIELDS.items() if k != "tenant"}
        return values | {"base_path": base_path, "auth": "role", "workgroup": "primary"}

    def create(self) -> dict[str, Any]:
        self.post("/connect/bucket", "/connect/bucket?type=s3", self.bucket_form("exports"))
        conn = self.services.connections.get(NAME)
        role = self.client.get("/connect/role").text
        assert conn.external_id in role and conn.role_name in role  # shown to paste
        return {"connection": None, **self.services.connections.policies(conn)}

    def update(self, base_path: str) -> None:
        self.post("/connect/bucket", "/connect/bucket", self.bucket_form(base_path))

    def validate(self) -> bool:
        page = f"/connections/{NAME}"
        done = self.post(f"{page}/validate", page)
        passed = "Validation passed" in done.text
        assert passed or "Validation failed" in done.text, done.text[:3000]
        return passed

    def act(self, action: str) -> None:
        page = f"/connections/{NAME}"
        done = self.post(f"{page}/{action}", page)
        assert done.status_code == 200, done.text[:3000]

    def run(self) -> None:
        page = f"/connections/{NAME}"
        self.post(f"{page}/run", page)
        self.wait()

    def cancel(self, transfer_id: str) -> None:
        page = f"/connections/{NAME}"
        button = f'aria-label="Cancel transfer {transfer_id}"'
        assert button in self.client.get(page).text
        done = self.post(f"/transfers/{transfer_id}/cancel", page)
        assert f"The transfer {FAILED_CANCEL}." in html.unescape(done.text), done.text
        # Asked once: no Cancel button for it any more, and the table says why.
        assert button not in done.text and "cancel requested" in done.text

    def shown(self) -> dict[str, Any]:
        """What the pages say: the list row and the connection's page, held against the view
        every other door shows (the pages render the same view)."""
        page = self.client.get(f"/connections/{NAME}").text
        listing = self.client.get("/connections").text
        view = self.services.connections.view(self.services.connections.get(NAME))
        status = view["status"]
        assert f'badge-{status}">{status.capitalize()}</span>' in page
        assert f'badge-{status}">{status.capitalize()}</span>' in listing
        assert ("Transfers are held" in page) == (view["failing"] is not None)
        assert ("held until revalidated" in listing) == (view["failing"] is not None)
        last = view["last_transfer"]
        assert (f"{last['status']} at " if last else "none yet") in page
        return essentials(json.loads(json.dumps(view, default=str)))


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


# -- what must agree -------------------------------------------------------------------------------

TIMES = {"created_at", "updated_at", "at", "since", "started_at", "finished_at", "next_run"}
IDS = {"id", "connection_id", "manifest", "duration_ms", "window"}


def essentials(view: dict[str, Any]) -> dict[str, Any]:
    """A connection's public view without what differs by nature between state stores: IDs,
    times (kept as set or not), the generated role name and external ID."""
    tokens = {view["external_id"]: "<external-id>", view["role_name"]: "<role>"}
    generated = ("role_name", "role_arn", "external_id")
    return dict(scrub({k: v for k, v in view.items() if k not in generated}, tokens))


def scrub(value: Any, tokens: dict[str, str] | None = None) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                (v is not None)
                if k in TIMES
                else ("<id>" if k in IDS and v is not None else scrub(v, tokens))
            )
            for k, v in value.items()
            if v not in ("", None) or k in TIMES or k in ("failing", "last_transfer", "validation")
        }
    if isinstance(value, list):
        return [scrub(v, tokens) for v in value]
    if isinstance(value, str):
        for token, placeholder in (tokens or {}).items():
            value = value.replace(token, placeholder)
        value = re.sub(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", "<id>", value)
        value = re.sub(r"\d{4}-\d\d-\d\d([T ][\d:.]+(Z|[+-]\d\d:\d\d)?)?", "<time>", value)
        value = re.sub(r"_byob_connection_test/[0-9a-f]+", "_byob_connection_test/<random>", value)
        return re.sub(r"\d{14}", "<stamp>", value)
    return value


def audit_since(door: Door) -> list[tuple[str, str, Any]]:
    """The audit entries an operation added: (action, actor, changes), oldest first."""
    entries = list(reversed(door.byob.state.audit.recent(limit=1000)))
    new, door.audited = entries[door.audited :], len(entries)
    conn = door.services.connections.get(NAME)
    tokens = {conn.external_id: "<external-id>", conn.role_name: "<role>"}
    out = []
    for e in new:
        changes = {k: v for k, v in e["changes"].items() if k != "link_spent"}
        out.append((e["action"], e["actor"], scrub(changes, tokens)))
    return out


def actor_kind(actor: str) -> str:
    return {"cli": "operator", "byob": "byob"}.get(actor, actor.split(":")[0])


def metrics(door: Door) -> list[str]:
    """The /metrics lines about connections, transfers and rows (durations vary)."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(door.services)) as client:
        text = client.get("/metrics").text
    keep = ("byob_connections{", "byob_transfers{", "byob_rows_delivered_total ")
    return sorted(line for line in text.splitlines() if line.startswith(keep))


def webhooks(door: Door) -> list[tuple[str, Any]]:
    conn = door.services.connections.get(NAME)
    tokens = {conn.role_name: "<role>", conn.external_id: "<external-id>"}
    return [(event, scrub(data, tokens)) for event, data in door.receiver.events()]


# -- the scenario ----------------------------------------------------------------------------------


@dataclass
class Customer:
    """The recipient's AWS account: what they do with the IAM material byob shows them."""

    account: CustomerAccount
    role: str = ""

    def create_role(self, policies: dict[str, Any]) -> None:
        self.role = policies["role_name"]
        self.account.create_role(
            self.role, policies["trust_policy"], policies["permissions_policy"]
        )

    def put_policy(self, policy: dict[str, Any]) -> None:
        self.account.client("iam").put_role_policy(
            RoleName=self.role, PolicyName="byob-transfer", PolicyDocument=json.dumps(policy)
        )


Step = Callable[[Door, Customer, LocalAws], None]


def scenario() -> list[tuple[str, Step]]:
    def create(door: Door, customer: Customer, aws: LocalAws) -> None:
        door.policies = door.create()  # type: ignore[attr-defined]
        assert door.policies["role_name"].startswith("byob-parity-")  # type: ignore[attr-defined]

    def validate_fails(door: Door, customer: Customer, aws: LocalAws) -> None:
        assert door.validate() is False  # the customer has not created the bucket yet

    def update(door: Door, customer: Customer, aws: LocalAws) -> None:
        customer.account.create_bucket(BUCKET)
        customer.create_role(door.policies)  # type: ignore[attr-defined]
        door.update("exports/v2")
        conn = door.services.connections.get(NAME)
        customer.put_policy(door.services.connections.policies(conn)["permissions_policy"])

    def validate_passes(door: Door, customer: Customer, aws: LocalAws) -> None:
        assert door.validate() is True

    def activate(door: Door, customer: Customer, aws: LocalAws) -> None:
        door.act("activate")

    def run(door: Door, customer: Customer, aws: LocalAws) -> None:
        door.run()

    def pause(door: Door, customer: Customer, aws: LocalAws) -> None:
        door.act("pause")

    def resume(door: Door, customer: Customer, aws: LocalAws) -> None:
        door.act("resume")

    def run_denied(door: Door, customer: Customer, aws: LocalAws) -> None:
        # The recipient withdraws s3:PutObject; AWS (the emulator, enforcing IAM) refuses.
        conn = door.services.connections.get(NAME)
        policy = door.services.connections.policies(conn)["permissions_policy"]
        for statement in policy["Statement"]:
            actions = statement["Action"]
            statement["Action"] = (
                [a for a in actions if a != "s3:PutObject"]
                if isinstance(actions, list)
                else actions
            )
        customer.put_policy(policy)
        with enforcing(aws):
            door.run()

    def cancel(door: Door, customer: Customer, aws: LocalAws) -> None:
        conn = door.services.connections.get(NAME)
        [failed] = [r for r in door.byob.state.transfers.history(conn.id) if r.status == "failed"]
        door.cancel(failed.id)

    return [
        ("create", create),
        ("validate (fails)", validate_fails),
        ("update", update),
        ("validate (passes)", validate_passes),
        ("activate", activate),
        ("run", run),
        ("pause", pause),
        ("resume", resume),
        ("run (permission withdrawn)", run_denied),
        ("cancel", cancel),
    ]


@contextmanager
def enforcing(aws: LocalAws) -> Iterator[None]:
    aws.enforce_iam(True)
    try:
        yield
    finally:
        aws.enforce_iam(False)


def test_every_front_door_tells_the_same_truth(tmp_path: Path, pg_url: str, aws: LocalAws) -> None:
    create_invoices(pg_url, is_acme=lambda i: i % 3 != 0)
    config = write_config(tmp_path / "byob.toml", pg_url, [MODEL])
    seen: dict[str, dict[str, Any]] = {}
    for kind in (CliDoor, RestDoor, WebDoor):
        name = kind.__name__.removesuffix("Door").lower()
        aws.reset()  # each door onboards the same bucket in the same account, from scratch
        aws.enforce_iam(False)
        keys = aws.create_service_user()
        customer = Customer(aws.customer(CUSTOMER))
        receiver = Receiver(SECRET)
        home = tmp_path / name
        door = kind(
            name=name,
            settings={
                "home": home / ".byob",
                "config": config,
                "database_url": f"sqlite:///{home / 'state.sqlite'}",
                "aws_endpoint_url": aws.endpoint_url,
                "settle_lag_seconds": 0,
                "webhook_url": receiver.url,
                "webhook_secret": SECRET,
                "aws_max_attempts": 2,
            },
            keys=keys,
            receiver=receiver,
        )
        steps: dict[str, Any] = {}
        try:
            for step, do in scenario():
                do(door, customer, aws)
                steps[step] = {
                    "shown": door.shown(),
                    "stored": essentials(
                        json.loads(
                            json.dumps(
                                door.services.connections.view(door.services.connections.get(NAME)),
                                default=str,
                            )
                        )
                    ),
                    "audit": audit_since(door),
                    "metrics": metrics(door),
                }
            if isinstance(door, CliDoor):
                steps["show"] = essentials(door.shown_alone())
        finally:
            door.close()  # delivers the webhooks still queued
            receiver.close()
        steps["webhooks"] = webhooks(door)
        if isinstance(door, WebDoor):  # the operator's activation spent the recipient's link
            steps["link"] = door.services.links.links.get(door.link_id).spent_at is not None
        seen[name] = steps

    cli, rest, web = seen["cli"], seen["rest"], seen["web"]
    assert cli["show"] == cli["cancel"]["shown"]  # `connections show` and `list` tell the same
    for step, _ in scenario():
        for name, other in (("rest", rest), ("web", web)):
            mine, theirs = cli[step], other[step]
            assert theirs["shown"] == mine["shown"], (step, name)
            assert theirs["stored"] == mine["stored"] == mine["shown"], (step, name)
            assert theirs["metrics"] == mine["metrics"], (step, name)
            assert [(a, c) for a, _, c in theirs["audit"]] == [
                (a, c) for a, _, c in mine["audit"]
            ], (step, name)
        for name, other in seen.items():
            for action, actor, _ in other[step]["audit"]:
                expected = {"cli": "operator", "rest": "operator", "web": "operator"}[name]
                if name == "web" and step in ("create", "update"):
                    expected = "link"  # the recipient's wizard
                if action == "connection.failing":
                    expected = "byob"
                assert actor_kind(actor) == expected, (name, step, action, actor)

    # What each operation must have done, the same everywhere.
    final = cli["cancel"]["stored"]
    assert final["status"] == "active" and final["failing"]["check"] == "transfer"
    assert "AccessDenied" in final["failing"]["message"]
    # What to do about it, from one place: the view every door shows, and the webhook.
    assert final["failing"]["fix"] == recipient_fix("transfer") != ""
    told = dict(cli["webhooks"])["connection.failing"]
    assert told["fix"] == recipient_fix("transfer"), told
    failed_first = cli["validate (fails)"]["stored"]["validation"]["checks"]
    assert any(c["outcome"] == "failed" and c["fix"] for c in failed_first), failed_first
    assert cli["run"]["stored"]["last_transfer"]["rows"] == ACME_ROWS
    assert [a for a, _, _ in cli["run (permission withdrawn)"]["audit"]] == [
        "transfer.trigger",
        "connection.failing",
    ]
    assert 'byob_connections{failing="true",status="active"} 1.0' in cli["cancel"]["metrics"]
    for name in seen:
        assert [event for event, _ in seen[name]["webhooks"]] == [
            "transfer.succeeded",
            "transfer.failed",
            "connection.failing",
        ], name
        assert seen[name]["webhooks"] == cli["webhooks"], name
    assert web["link"] is True
