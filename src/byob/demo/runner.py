"""`byob demo`: a vendor's billing database, a customer's AWS account (in an in-process
emulator), and byob delivering that customer's rows into their bucket: onboarding, a backfill,
then an incremental transfer, read back by DuckDB."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.container import Byob
from byob.demo import dataset
from byob.demo.emulator import CustomerAccount, LocalAws, emulator_credentials, local_aws
from byob.demo.readback import connect_s3
from byob.domain.transfers import TransferProgress
from byob.services import Services
from byob.settings import load_settings

TENANT = "acme"
CUSTOMER_ACCOUNT = "210987654321"
BUCKET = "acme-billing-exports"
REGION = "eu-west-1"
BASE_PATH = "vendor/billing"
# Short enough that the demo's second transfer sees rows changed a moment earlier.
DEMO_SETTLE_LAG_SECONDS = 1.0

console = Console()


def models_toml(source_path: Path) -> str:
    entries = "".join(
        f'\n[[models]]\nname = "{t}"\ntable = "{t}"\ntenant_column = "tenant_id"\n'
        f'cursor_column = "updated_at"\nprimary_key = ["id"]\n'
        for t in dataset.TABLES
    )
    return f'[source]\npath = "{source_path}"\n{entries}'


def run_demo(*, workdir: Path | None = None, scale: float = 1.0) -> dict[str, Any]:
    """Run the demo; returns its figures (the acceptance test checks them)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's request log
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="byob-demo-") as tmp:
        root = Path(workdir or tmp).resolve()
        root.mkdir(parents=True, exist_ok=True)
        with emulator_credentials(), local_aws() as aws:
            figures = _run(root, aws, scale)
    figures["seconds"] = round(time.monotonic() - started, 1)
    console.print(f"\n[bold green]Demo finished in {figures['seconds']} s.[/]")
    return figures


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _run(root: Path, aws: LocalAws, scale: float) -> dict[str, Any]:
    _step("1. The vendor's billing database (embedded SQLite source)")
    source = root / "billing.sqlite"
    tables = dataset.generate(datetime.now(UTC), scale=scale)
    counts = dataset.load_sqlite(source, tables)
    per_tenant = _tenant_counts(tables)
    _print_dataset(counts, per_tenant)
    config = root / "byob.toml"
    config.write_text(models_toml(source))

    _step("2. A local AWS (moto server on 127.0.0.1) and the customer's account")
    settings = load_settings(
        home=root / ".byob",
        config=config,
        aws_endpoint_url=aws.endpoint_url,
        settle_lag_seconds=DEMO_SETTLE_LAG_SECONDS,
    )
    byob = Byob(
        settings, aws=AwsSessions(AwsConfig(endpoint_url=aws.endpoint_url), aws.service_session())
    )
    byob.migrate()
    services = Services(byob)
    customer = aws.customer(CUSTOMER_ACCOUNT, REGION)
    customer.create_bucket(BUCKET)
    console.print(
        f"emulator at {aws.endpoint_url}; byob runs as [bold]{byob.service_principal()}[/]"
    )
    console.print(
        f"customer account {CUSTOMER_ACCOUNT} created bucket [bold]{BUCKET}[/] in {REGION}"
    )

    _step("3. Onboarding: create the connection, create the role, validate, activate")
    created = services.connections.create(
        actor="demo",
        name="acme-s3",
        tenant=TENANT,
        type="s3",
        account_id=CUSTOMER_ACCOUNT,
        bucket=BUCKET,
        region=REGION,
        base_path=BASE_PATH,
    )
    conn, policies = created.connection, created.policies
    console.print(
        f"role name: [bold]{policies['role_name']}[/]  external ID: {policies['external_id']}"
    )
    console.print(
        Panel(json.dumps(policies["trust_policy"], indent=2), title="trust policy", expand=False)
    )
    console.print(
        Panel(
            json.dumps(policies["permissions_policy"], indent=2),
            title="permissions policy",
            expand=False,
        )
    )
    customer.create_role(
        policies["role_name"], policies["trust_policy"], policies["permissions_policy"]
    )
    console.print(f"the customer created role {policies['role_arn']} with exactly these policies")
    validated = services.connections.validate(conn.name, actor="demo")
    _print_checks(validated.results)
    if not validated.passed:
        raise RuntimeError("demo validation failed")
    conn = services.connections.activate(conn.name, actor="demo")
    console.print(f"connection [bold]{conn.name}[/]: [green]{conn.status}[/]")

    _step("4. First transfer: backfill of every model")
    first = _transfer(services, conn.name)

    _step("5. New and updated rows, then an incremental transfer")
    stamp = datetime.now(UTC) - timedelta(seconds=DEMO_SETTLE_LAG_SECONDS)
    mutation = _restamp(dataset.mutate(datetime.now(UTC), counts), stamp)
    changed = dataset.apply_mutation_sqlite(source, mutation)
    console.print("changed in the source: " + ", ".join(f"{t} {n}" for t, n in changed.items()))
    time.sleep(DEMO_SETTLE_LAG_SECONDS + 0.1)
    second = _transfer(services, conn.name)

    _step("6. What the customer's bucket holds")
    keys = customer.keys(BUCKET, BASE_PATH)
    _print_tree(keys)

    _step("7. Reading it back with DuckDB over the S3 endpoint")
    readback = _query(aws, customer)
    expected = _expected_versions(source, stamp, counts)
    delivered = {t: sum(n for (m, _), n in readback.items() if m == t) for t in dataset.TABLES}
    ok = delivered == expected
    console.print(
        "[bold green]every row version delivered exactly once[/]"
        if ok
        else f"[bold red]mismatch[/]: expected {expected}, read {delivered}"
    )
    if not ok:
        raise RuntimeError("demo read-back mismatch")
    return {
        "source_rows": sum(counts.values()),
        "tenant_rows": sum(per_tenant[t][TENANT] for t in dataset.TABLES),
        "first_transfer_rows": first,
        "second_transfer_rows": second,
        "objects": len(keys),
        "delivered": delivered,
    }


def _transfer(services: Services, name: str) -> int:
    with Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed:>7,} rows"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def for_model(model: str) -> Callable[[TransferProgress], None]:
            tasks[model] = progress.add_task(model, total=None)
            return lambda p: progress.update(tasks[model], completed=p.rows, total=p.total)

        results = services.transfers.run(name, actor="demo", progress=for_model)
        for r in results:
            progress.update(
                tasks[r.record.model], total=r.record.rows or 1, completed=r.record.rows or 1
            )
    table = Table(
        "model",
        "type",
        "rows",
        "files",
        "bytes",
        "window (cursor after → up to)",
        title_justify="left",
    )
    for r in results:
        rec = r.record
        low = rec.window.low.strftime("%H:%M:%S") if rec.window.low else "-∞"
        table.add_row(
            rec.model,
            rec.type.value,
            f"{rec.rows:,}",
            str(rec.files),
            f"{rec.bytes:,}",
            f"{low} → {rec.window.high.strftime('%H:%M:%S')}",
        )
    console.print(table)
    return sum(r.record.rows for r in results)


def _restamp(mutation: dataset.Mutation, stamp: datetime) -> dataset.Mutation:
    """The demo compresses time: the changes happen just after the first transfer."""

    def restamped(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("updated_at")
        column = pa.array([stamp] * table.num_rows, type=table.schema.field(index).type)
        return table.set_column(index, "updated_at", column)

    return dataset.Mutation(
        now=mutation.now,
        inserts={t: restamped(tb) for t, tb in mutation.inserts.items()},
        updates={t: restamped(tb) for t, tb in mutation.updates.items()},
    )


def _tenant_counts(tables: dict[str, pa.Table]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, table in tables.items():
        counts: dict[str, int] = defaultdict(int)
        for row in table.group_by("tenant_id").aggregate([("id", "count")]).to_pylist():
            counts[row["tenant_id"]] = row["id_count"]
        out[name] = counts
    return out


def _expected_versions(source: Path, stamp: datetime, before: dict[str, int]) -> dict[str, int]:
    """Row versions the tenant should have received, counted in the source itself: every
    current row, plus the earlier version of each row updated after the backfill."""
    import sqlite3

    from byob.sources.sqlite import TIMESTAMP_TEXT

    text = stamp.strftime(TIMESTAMP_TEXT)
    out = {}
    with sqlite3.connect(source) as db:
        for t in dataset.TABLES:
            current = db.execute(
                f"SELECT count(*) FROM {t} WHERE tenant_id = ?", (TENANT,)
            ).fetchone()[0]
            updated = db.execute(
                f"SELECT count(*) FROM {t} WHERE tenant_id = ? AND updated_at = ? AND id <= ?",
                (TENANT, text, before[t]),
            ).fetchone()[0]
            out[t] = current + updated
    return out


def _print_dataset(counts: dict[str, int], per_tenant: dict[str, dict[str, int]]) -> None:
    table = Table(
        "table",
        *dataset.TENANTS,
        "rows",
        title=f"{sum(counts.values()):,} rows",
        title_justify="left",
    )
    for name in dataset.TABLES:
        table.add_row(
            name, *[f"{per_tenant[name][t]:,}" for t in dataset.TENANTS], f"{counts[name]:,}"
        )
    console.print(table)


def _print_checks(checks: list[Any]) -> None:
    table = Table("check", "result", "details", title="validation", title_justify="left")
    for c in checks:
        colour = {"passed": "green", "warning": "yellow"}.get(c.outcome.value, "red")
        table.add_row(c.name, f"[{colour}]{c.outcome.value}[/]", c.message)
    console.print(table)


def _print_tree(keys: list[dict[str, Any]]) -> None:
    tree = Tree(f"[bold]s3://{BUCKET}/")
    nodes: dict[str, Tree] = {}
    for obj in sorted(keys, key=lambda o: o["Key"]):
        parts = obj["Key"].split("/")
        parent, path = tree, ""
        for part in parts[:-1]:
            path += part + "/"
            if path not in nodes:
                nodes[path] = parent.add(part + "/")
            parent = nodes[path]
        parent.add(f"{parts[-1]}  [dim]{obj['Size']:,} B[/]")
    console.print(tree)


def _query(aws: LocalAws, customer: CustomerAccount) -> dict[tuple[str, str], int]:
    con = connect_s3(aws.endpoint_url, region=REGION, **customer.credentials())
    results: dict[tuple[str, str], int] = {}
    table = Table(
        "model",
        "dt",
        "rows",
        title="SELECT dt, count(*) … read_parquet(hive_partitioning)",
        title_justify="left",
    )
    for model in dataset.TABLES:
        url = f"s3://{BUCKET}/{BASE_PATH}/{model}/*/*.parquet"
        rows = con.execute(
            "SELECT CAST(dt AS VARCHAR) AS dt, count(*) FROM read_parquet($url, hive_partitioning = true) "
            "GROUP BY 1 ORDER BY 1",
            {"url": url},
        ).fetchall()
        for dt, n in rows:
            results[(model, dt)] = n
            table.add_row(model, dt, f"{n:,}")
    console.print(table)
    return results
