"""byob, driven exactly as an operator would: through its CLI, one subprocess per command.

Per tenant:  connections create → validate → activate  (setup, not timed)
             transfers run                             (timed; peak RSS measured)

Every (variant, scope) starts from a fresh state store, so each run is a first, full export
(no cursor from an earlier run makes it incremental).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from measure import Measured, run_measured
from outputs import EMULATOR_CREDENTIALS
from shapes import INVOICES, Shape


def byob_executable() -> Path:
    """The `byob` console script installed next to the running interpreter.

    $BYOB_BENCH_BYOB overrides it (e.g. to try the harness against a stand-in).
    """
    override = os.environ.get("BYOB_BENCH_BYOB")
    return Path(override) if override else Path(sys.executable).parent / "byob"


def write_config(work_dir: Path, pg_url: str, shape: Shape = INVOICES) -> Path:
    """The project file every byob command reads (`--config`): one model, the shape's table."""
    path = work_dir / "byob.toml"
    path.write_text(
        f"""[source]
url = {json.dumps(pg_url)}

[[models]]
name = "{shape.table}"
table = "{shape.table}"
tenant_column = "tenant_id"
cursor_column = "updated_at"
primary_key = ["{shape.key}"]
"""
    )
    return path


def state_path(work_dir: Path) -> Path:
    return work_dir / "byob-state.sqlite"


def byob_env(work_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for byob: a SQLite state store in the work dir, and no settle lag.

    The settle lag normally holds back rows updated in the last N seconds (their transaction
    may not be visible everywhere yet); the bench's rows are all old, and 0 keeps it explicit.
    """
    env = dict(os.environ)
    env["BYOB_DATABASE_URL"] = f"sqlite:///{state_path(work_dir).resolve()}"
    env["BYOB_SETTLE_LAG_SECONDS"] = "0"
    env.update(extra or {})
    return env


def byob_s3_args(endpoint_url: str, bucket: str, tenant: str) -> list[str]:
    """`connections create --type s3` flags: role-based, as recipients onboard by default.

    The emulator (moto at `endpoint_url`, via BYOB_AWS_ENDPOINT_URL in the environment) lets
    byob assume any role in the recipient's account without IAM enforcement; bucket names
    are global there, so the bucket the benchmark made is the recipient's. Each tenant lands
    under its own folder so outputs can be counted per tenant.
    """
    del endpoint_url  # passed through the environment
    return [
        "--account-id",
        "210987654321",
        "--bucket",
        bucket,
        "--region",
        EMULATOR_CREDENTIALS["AWS_DEFAULT_REGION"],
        "--base-path",
        f"bench/{tenant}",
    ]


@dataclass
class Destination:
    """Where a variant's connections deliver: local directories or an S3 bucket."""

    type: str  # "local" | "s3"
    out_dir: Path | None = None  # local: each tenant under out_dir/<tenant>
    endpoint_url: str = ""  # s3
    bucket: str = ""  # s3
    env: dict[str, str] = field(default_factory=dict)  # s3 credentials for the emulator

    def create_kwargs(self, tenant: str) -> dict[str, str]:
        """The same connection as create_args, as keyword arguments of ConnectionService.create."""
        args = self.create_args(tenant)
        return {args[i].lstrip("-").replace("-", "_"): args[i + 1] for i in range(0, len(args), 2)}

    def create_args(self, tenant: str) -> list[str]:
        if self.type == "local":
            assert self.out_dir is not None
            return ["--type", "local", "--path", str(self.out_dir / tenant)]
        return ["--type", "s3", *byob_s3_args(self.endpoint_url, self.bucket, tenant)]


@dataclass
class ByobRun:
    """The timed part of a byob scope: one `transfers run` per tenant."""

    seconds: float = 0.0  # sum over tenants
    peak_rss_mb: float = 0.0  # max over tenants
    reported_rows: int = 0  # what byob said it wrote
    reported_bytes: int = 0
    runs: int = 0


class Byob:
    """Runs byob CLI commands against one work dir (config + state store)."""

    def __init__(
        self, work_dir: Path, pg_url: str, destination: Destination, shape: Shape = INVOICES
    ) -> None:
        self.work_dir = work_dir
        self.model = shape.table
        self.config = write_config(work_dir, pg_url, shape)
        self.destination = destination
        self.env = byob_env(work_dir, destination.env)

    def reset_state(self) -> None:
        """Forget all connections and cursors: the next run is a first, full export."""
        state_path(self.work_dir).unlink(missing_ok=True)
        if self.destination.out_dir is not None:
            shutil.rmtree(self.destination.out_dir, ignore_errors=True)
            self.destination.out_dir.mkdir(parents=True)

    def command(self, *args: str) -> list[str]:
        return [str(byob_executable()), "--config", str(self.config), *args]

    def setup(self, tenant: str, timeout: float) -> None:
        """Create, validate and activate the tenant's connection (untimed)."""
        name = connection_name(tenant)
        steps = [
            (
                "connections",
                "create",
                "--name",
                name,
                "--tenant",
                tenant,
                *self.destination.create_args(tenant),
                "--json",
            ),
            ("connections", "validate", name, "--json"),
            ("connections", "activate", name, "--json"),
        ]
        for step in steps:
            run_measured(self.command(*step), env=self.env, timeout=timeout).check(
                "byob " + " ".join(step[:2]) + f" ({tenant})"
            )

    def transfer(self, tenant: str, timeout: float) -> tuple[Measured, dict]:
        """`transfers run` for one tenant: measured, and its JSON report parsed."""
        args = ("transfers", "run", connection_name(tenant), "--json")
        measured = run_measured(self.command(*args), env=self.env, timeout=timeout)
        measured.check(f"byob transfers run ({tenant})")
        return measured, parse_json_output(measured.stdout)

    def export(self, tenants: list[str], budget: float) -> ByobRun:
        """Set up every tenant (untimed), then time the transfers: `transfers run NAME` for
        one tenant, `transfers run --all` (one process, one connection after another) for
        several, as an operator exporting everything would."""
        self.reset_state()
        if len(tenants) == 1:
            self.setup(tenants[0], timeout=max(budget, 60))
            measured, report = self.transfer(tenants[0], timeout=budget)
        else:
            self.setup_many(tenants, timeout=max(budget, 600))
            measured = run_measured(
                self.command("transfers", "run", "--all", "--json"), env=self.env, timeout=budget
            )
            measured.check("byob transfers run --all")
            report = parse_json_output(measured.stdout)
        result = ByobRun(
            seconds=measured.seconds, peak_rss_mb=measured.peak_rss_mb or 0.0, runs=len(tenants)
        )
        for transfer in report.get("transfers", []):
            if transfer.get("model") == self.model:
                result.reported_rows += int(transfer.get("rows", 0))
                result.reported_bytes += int(transfer.get("bytes", 0))
        return result

    def setup_many(self, tenants: list[str], timeout: float) -> None:
        """Create, validate and activate many connections in one process (untimed): 600 CLI
        start-ups would take longer than the transfers being measured."""
        script = (
            "import json, sys\n"
            "from byob.container import Byob\n"
            "from byob.services import Services\n"
            "from byob.settings import load_settings\n"
            "byob = Byob(load_settings(config=sys.argv[1])); byob.migrate()\n"
            "connections = Services(byob).connections\n"
            "for tenant, args in json.loads(sys.argv[2]):\n"
            "    conn = connections.create(actor='bench', tenant=tenant, **args).connection\n"
            "    connections.validate(conn.name, actor='bench')\n"
            "    connections.activate(conn.name, actor='bench')\n"
            "byob.close()\n"
        )
        specs = [
            [t, self.destination.create_kwargs(t) | {"name": connection_name(t)}] for t in tenants
        ]
        python = str(byob_executable().parent / "python")
        run_measured(
            [python, "-c", script, str(self.config), json.dumps(specs)],
            env=self.env,
            timeout=timeout,
        ).check("byob setup of many connections")


def connection_name(tenant: str) -> str:
    return f"bench-{tenant}"


def parse_json_output(stdout: str) -> dict:
    """The JSON document a `--json` command printed (tolerating stray lines before it)."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start = text.find("{")
        if start < 0:
            raise ValueError(f"no JSON in byob output: {text[:500]!r}") from None
        return json.loads(text[start:])
