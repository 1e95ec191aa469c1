"""dlt in its fastest documented configuration for SQL → Parquet files.

* `sql_table(backend="connectorx")`: ConnectorX reads PostgreSQL's binary protocol in Rust
  straight into Arrow — dlt's documented fastest backend.
* `backend_kwargs={"return_type": "arrow_stream", "batch_size": …}`: without it ConnectorX
  ignores `chunk_size` and materialises the whole result as one Arrow table (dlt logs a hint
  about it); with it, batches stream through dlt's extract.
* `filesystem` destination on a local `file://` bucket with `loader_file_format="parquet"`:
  Arrow items are written to Parquet at extract time, so normalize only moves files.

The pipeline gets a fresh `pipelines_dir` and bucket every run so no state from an earlier
run (incremental cursors, schemas, pending packages) changes what is done.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from shapes import INVOICES, Shape

BATCH_ROWS = 100_000
PIPELINE = "byob_bench"
DATASET = "bench"


def configure_offline() -> None:
    """Environment dlt reads at import/pipeline time: no telemetry, no stray config files."""
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")


def sqlalchemy_url(pg_url: str) -> str:
    """dlt reflects the table through SQLAlchemy; psycopg 3 is the installed driver.

    ConnectorX gets the same URL with the `+psycopg` driver stripped (dlt does that itself).
    """
    for prefix in ("postgresql://", "postgres://"):
        if pg_url.startswith(prefix):
            return "postgresql+psycopg://" + pg_url[len(prefix) :]
    return pg_url


def export(pg_url: str, tenant: str | None, work_dir: Path, shape: Shape = INVOICES) -> dict:
    """Run extract + normalize + load once; `tenant=None` loads the whole table.

    Returns per-phase seconds plus where the Parquet files of the shape's table landed.
    """
    configure_offline()
    import dlt  # imported after the environment is set, and only in the dlt subprocess
    from dlt.sources.sql_database import sql_table

    pipelines_dir = work_dir / "pipelines"
    bucket = work_dir / "bucket"
    for path in (pipelines_dir, bucket):
        shutil.rmtree(path, ignore_errors=True)
    bucket.mkdir(parents=True)

    resource = sql_table(
        credentials=sqlalchemy_url(pg_url),
        table=shape.table,
        backend="connectorx",
        chunk_size=BATCH_ROWS,
        backend_kwargs={"return_type": "arrow_stream", "batch_size": BATCH_ROWS},
        # Precision hints make dlt keep numeric(18,2) as decimal(18,2) like the other
        # contenders, instead of inferring types from the data.
        reflection_level="full_with_precision",
        included_columns=list(shape.column_names),
        query_adapter_callback=_tenant_filter(tenant),
    )
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE,
        pipelines_dir=str(pipelines_dir),
        destination=dlt.destinations.filesystem(bucket_url=bucket.resolve().as_uri()),
        dataset_name=DATASET,
        progress="log" if os.environ.get("BYOB_BENCH_DLT_PROGRESS") else None,
    )
    phases: dict[str, float] = {}
    started = time.perf_counter()
    pipeline.extract(resource, loader_file_format="parquet")
    phases["extract"] = time.perf_counter() - started
    mark = time.perf_counter()
    pipeline.normalize()
    phases["normalize"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pipeline.load()
    phases["load"] = time.perf_counter() - mark
    files = sorted(str(p) for p in table_dir(work_dir, shape.table).rglob("*.parquet"))
    return {"phases": phases, "inner_seconds": time.perf_counter() - started, "files": files}


def table_dir(work_dir: Path, table: str) -> Path:
    """Where the filesystem destination puts the table's files.

    The bucket also holds dlt's own bookkeeping tables (_dlt_loads, …), which are not data.
    """
    return work_dir / "bucket" / DATASET / table


def _tenant_filter(tenant: str | None):
    """A query adapter adding `WHERE tenant_id = '<tenant>'` (None: no filter).

    ConnectorX takes a SQL string, so dlt compiles the query with literal binds — the tenant
    ends up inlined in the SQL rather than bound as a parameter.
    """
    if tenant is None:
        return None

    def adapt(query, table):
        return query.where(table.c.tenant_id == tenant)

    return adapt
