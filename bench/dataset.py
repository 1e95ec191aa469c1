"""The benchmark's source table: one table per shape (`invoices` by default, see shapes.py),
N rows over 200 tenants (or `--tenants`), one of them large.

The table is generated server-side with `INSERT ... SELECT ... FROM generate_series` whose
every column is a deterministic expression of the series value, so two builds with the same
parameters hold identical rows, and nothing crosses the wire while building.

Tenant layouts:
  interleaved (default) — in every block of 10,000 consecutive ids the first `share * 10,000`
      belong to `tenant_000` and the rest are dealt round-robin to `tenant_001` … `tenant_199`,
      so every tenant's rows are spread over the whole heap, as in a real multi-tenant table
      filled over time. Reading one small tenant then costs a bitmap heap scan touching one
      page per row, which dominates the all-tenants figures of per-tenant exporters.
  clustered — each tenant's rows are one contiguous id range (as after CLUSTER, or with
      per-tenant partitions): per-tenant reads become cheap sequential range reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from shapes import INVOICES, Shape

TENANT_COUNT = 200
LARGEST_TENANT = "tenant_000"
# Per-block resolution of the large tenant's share (share is rounded to 1/BLOCK).
BLOCK = 10_000

# Tenant number of series value i, per layout (see the module docstring).
TENANT_EXPRESSIONS = {
    "interleaved": f"""
        CASE WHEN mod(i, {BLOCK}) < %(big)s THEN 0
             ELSE 1 + mod((i / {BLOCK}) * ({BLOCK} - %(big)s) + mod(i, {BLOCK}) - %(big)s,
                          %(tenants)s - 1)
        END""",
    "clustered": """
        CASE WHEN i <= %(big_rows)s THEN 0
             ELSE 1 + ((i - %(big_rows)s - 1) * (%(tenants)s - 1)) / (%(rows)s - %(big_rows)s)
        END""",
}
LAYOUTS = tuple(TENANT_EXPRESSIONS)


@dataclass(frozen=True)
class Dataset:
    """Parameters that fully determine the table's contents."""

    rows: int
    tenant_share: float
    layout: str = "interleaved"
    tenants: int = TENANT_COUNT
    shape: Shape = INVOICES

    @property
    def table(self) -> str:
        return self.shape.table

    @property
    def big_per_block(self) -> int:
        """How many ids of each BLOCK go to the largest tenant."""
        return round(self.tenant_share * BLOCK)

    @property
    def marker(self) -> str:
        """Table comment written last, so its presence proves a complete build."""
        marker = (
            f"byob-bench v3 rows={self.rows} big_per_block={self.big_per_block}"
            f" layout={self.layout} tenants={self.tenants}"
        )
        # invoices keeps its original marker, so an existing build stays reusable.
        return marker if self.shape is INVOICES else f"{marker} shape={self.shape.name}"

    @property
    def big_rows(self) -> int:
        """Rows of the largest tenant in the clustered layout."""
        return round(self.tenant_share * self.rows)


def tenants(count: int = TENANT_COUNT) -> list[str]:
    """All tenant ids, largest first."""
    return [f"tenant_{n:03d}" for n in range(count)]


def current_marker(conn: psycopg.Connection, table: str) -> str | None:
    """The marker comment of an existing bench table, or None when absent."""
    row = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (table,)).fetchone()
    return row[0] if row else None


def ensure_dataset(pg_url: str, dataset: Dataset, log=print) -> bool:
    """Build the shape's table unless an identical build is already present.

    Returns True when the table was (re)built. Inserting before creating the indexes, then
    VACUUM (FREEZE, ANALYZE), keeps the build fast and makes the first contender's reads not
    pay for setting hint bits (which would otherwise dirty and rewrite every page once).
    """
    table = dataset.table
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if current_marker(conn, table) == dataset.marker:
            log(f"reusing {table}: {dataset.marker}")
            return False
        started = time.monotonic()
        log(f"building {table}: {dataset.rows:,} rows …")
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(dataset.shape.ddl)
        _insert_in_chunks(conn, dataset)
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({dataset.shape.key})")
        conn.execute(f"CREATE INDEX {table}_tenant_updated ON {table} (tenant_id, updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        conn.execute(f"COMMENT ON TABLE {table} IS '{dataset.marker}'")
        log(f"built {table} in {time.monotonic() - started:.1f}s")
        return True


def _insert_in_chunks(conn: psycopg.Connection, dataset: Dataset, chunk: int = 1_000_000) -> None:
    """Insert the rows a million at a time, to bound the size of any single transaction."""
    sql = dataset.shape.insert.replace("{tenant}", TENANT_EXPRESSIONS[dataset.layout])
    params = {
        "big": dataset.big_per_block,
        "big_rows": dataset.big_rows,
        "rows": dataset.rows,
        "tenants": dataset.tenants,
    }
    for lo in range(1, dataset.rows + 1, chunk):
        hi = min(lo + chunk - 1, dataset.rows)
        conn.execute(sql, {**params, "lo": lo, "hi": hi})


def tenant_row_counts(pg_url: str, table: str) -> dict[str, int]:
    """Rows per tenant, straight from the source: the ground truth every output must match."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            f"SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id ORDER BY tenant_id"
        ).fetchall()
    return {tenant: count for tenant, count in rows}
