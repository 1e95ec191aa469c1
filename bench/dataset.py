"""The benchmark's source table: `invoices`, N rows over 200 tenants (or `--tenants`), one of
them large.

The table is generated server-side with a single `INSERT ... SELECT ... FROM generate_series`
whose every column is a deterministic expression of the series value, so two builds with the
same parameters hold identical rows, and nothing crosses the wire while building.

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

TABLE = "invoices"
TENANT_COUNT = 200
LARGEST_TENANT = "tenant_000"
# Per-block resolution of the large tenant's share (share is rounded to 1/BLOCK).
BLOCK = 10_000

# The 14 exported columns, in the order every contender selects them.
COLUMNS = (
    "id",
    "tenant_id",
    "account_id",
    "invoice_number",
    "status",
    "currency",
    "amount",
    "tax",
    "balance",
    "invoice_date",
    "due_date",
    "created_at",
    "updated_at",
    "notes",
)

DDL = f"""
CREATE TABLE {TABLE} (
    id              bigint        NOT NULL,
    tenant_id       text          NOT NULL,
    account_id      bigint        NOT NULL,
    invoice_number  text          NOT NULL,
    status          text          NOT NULL,
    currency        varchar(3)    NOT NULL,
    amount          numeric(18,2) NOT NULL,
    tax             numeric(18,2) NOT NULL,
    balance         numeric(18,2) NOT NULL,
    invoice_date    date          NOT NULL,
    due_date        date          NOT NULL,
    created_at      timestamptz   NOT NULL,
    updated_at      timestamptz   NOT NULL,
    notes           text
)
"""

# `i` is the series value; `t` the tenant number, `a` the amount in cents. mod() rather
# than `%`, which psycopg reserves for placeholders. Timestamps carry
# milliseconds so the writers' ms coercion is exercised; every updated_at lies in 2020–2025,
# i.e. well over an hour in the past, so a settle-lag cursor never holds rows back.
INSERT = f"""
INSERT INTO {TABLE}
SELECT
    i,
    'tenant_' || lpad(t::text, 3, '0'),
    1 + mod(i * 7919, 100000),
    'INV-' || lpad(i::text, 10, '0'),
    (ARRAY['draft','open','paid','void','uncollectible'])[1 + mod(i / 7, 5)],
    (ARRAY['USD','EUR','GBP','JPY','CAD'])[1 + mod(i / 3, 5)],
    a / 100.0,
    round(a * 0.002, 2),
    CASE WHEN mod(i / 7, 5) = 2 THEN 0 ELSE round(a * 0.012, 2) END,
    DATE '2020-01-01' + mod(i, 1800)::int,
    DATE '2020-01-31' + mod(i, 1800)::int,
    ts,
    ts + mod(i, 10000) * INTERVAL '1 minute',
    CASE WHEN mod(i, 50) = 0 THEN 'note ' || md5(i::text) END
FROM (
    SELECT
        i,
        {{tenant}} AS t,
        mod(i * 104729, 10000000) AS a,
        TIMESTAMPTZ '2020-01-01 00:00:00+00'
            + mod(i, 1800) * INTERVAL '1 day'
            + mod(i, 86400) * INTERVAL '1 second'
            + mod(i, 997) * INTERVAL '1 millisecond' AS ts
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
) AS s
"""

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

    @property
    def big_per_block(self) -> int:
        """How many ids of each BLOCK go to the largest tenant."""
        return round(self.tenant_share * BLOCK)

    @property
    def marker(self) -> str:
        """Table comment written last, so its presence proves a complete build."""
        return (
            f"byob-bench v3 rows={self.rows} big_per_block={self.big_per_block}"
            f" layout={self.layout} tenants={self.tenants}"
        )

    @property
    def big_rows(self) -> int:
        """Rows of the largest tenant in the clustered layout."""
        return round(self.tenant_share * self.rows)


def tenants(count: int = TENANT_COUNT) -> list[str]:
    """All tenant ids, largest first."""
    return [f"tenant_{n:03d}" for n in range(count)]


def current_marker(conn: psycopg.Connection) -> str | None:
    """The marker comment of an existing `invoices` table, or None when absent."""
    row = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (TABLE,)).fetchone()
    return row[0] if row else None


def ensure_dataset(pg_url: str, dataset: Dataset, log=print) -> bool:
    """Build `invoices` unless an identical build is already present.

    Returns True when the table was (re)built. Inserting before creating the indexes, then
    VACUUM (FREEZE, ANALYZE), keeps the build fast and makes the first contender's reads not
    pay for setting hint bits (which would otherwise dirty and rewrite every page once).
    """
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if current_marker(conn) == dataset.marker:
            log(f"reusing {TABLE}: {dataset.marker}")
            return False
        started = time.monotonic()
        log(f"building {TABLE}: {dataset.rows:,} rows …")
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(DDL)
        _insert_in_chunks(conn, dataset)
        conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"CREATE INDEX {TABLE}_tenant_updated ON {TABLE} (tenant_id, updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {TABLE}")
        conn.execute(f"COMMENT ON TABLE {TABLE} IS '{dataset.marker}'")
        log(f"built {TABLE} in {time.monotonic() - started:.1f}s")
        return True


def _insert_in_chunks(conn: psycopg.Connection, dataset: Dataset, chunk: int = 1_000_000) -> None:
    """Insert the rows a million at a time, to bound the size of any single transaction."""
    sql = INSERT.replace("{tenant}", TENANT_EXPRESSIONS[dataset.layout])
    params = {
        "big": dataset.big_per_block,
        "big_rows": dataset.big_rows,
        "rows": dataset.rows,
        "tenants": dataset.tenants,
    }
    for lo in range(1, dataset.rows + 1, chunk):
        hi = min(lo + chunk - 1, dataset.rows)
        conn.execute(sql, {**params, "lo": lo, "hi": hi})


def tenant_row_counts(pg_url: str) -> dict[str, int]:
    """Rows per tenant, straight from the source: the ground truth every output must match."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            f"SELECT tenant_id, count(*) FROM {TABLE} GROUP BY tenant_id ORDER BY tenant_id"
        ).fetchall()
    return {tenant: count for tenant, count in rows}
