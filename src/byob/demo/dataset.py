"""A deterministic multi-tenant SaaS billing dataset for the demo, tests and benchmarks.

`generate` builds Arrow tables, `load_sqlite`/`load_postgres` create and fill a database, and
`mutate` + `apply_mutation_*` make an incremental change that a cursor on `updated_at` picks up.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
import uuid
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv

TABLES: tuple[str, ...] = (
    "accounts",
    "subscriptions",
    "invoices",
    "invoice_items",
    "payments",
    "usage",
)
TENANTS: tuple[str, ...] = ("acme", "globex", "initech")
# Unequal on purpose, so per-tenant code cannot get away with assuming equal sizes.
_WEIGHTS = (0.6, 0.3, 0.1)
# Rows per table at scale 1 before the tenant weights; payments follow from invoice statuses.
_BASE = {
    "accounts": 3000,
    "subscriptions": 4500,
    "invoices": 18000,
    "invoice_items": 45000,
    "usage": 40000,
}
# Rows per tenant that one mutation inserts.
_MUTATION_ROWS = {
    "accounts": 1,
    "subscriptions": 2,
    "invoices": 5,
    "invoice_items": 12,
    "usage": 40,
}

# kind -> (Arrow type, PostgreSQL type, SQLite declared type)
_KINDS: dict[str, tuple[pa.DataType, str, str]] = {
    "bigint": (pa.int64(), "bigint", "BIGINT"),
    "int": (pa.int32(), "integer", "INTEGER"),
    "text": (pa.string(), "text", "TEXT"),
    "money": (pa.decimal128(18, 2), "numeric(18,2)", "NUMERIC(18,2)"),
    "price": (pa.decimal128(18, 4), "numeric(18,4)", "NUMERIC(18,4)"),
    "date": (pa.date32(), "date", "DATE"),
    "ts": (pa.timestamp("us", tz="UTC"), "timestamptz", "TIMESTAMPTZ"),
    "uuid": (pa.string(), "uuid", "UUID"),
    "json": (pa.string(), "json", "JSON"),
    "jsonb": (pa.string(), "jsonb", "JSON"),
    "bool": (pa.bool_(), "boolean", "BOOLEAN"),
    "double": (pa.float64(), "double precision", "DOUBLE PRECISION"),
}
# "name kind" per column, "?" marks a nullable one; id, tenant_id lead and updated_at ends each.
_COLUMNS = {
    "accounts": "name text, email text, external_ref uuid, country text, currency text,"
    " status text, is_enterprise bool, seats int, notes text?, metadata json",
    "subscriptions": "account_id bigint, plan text, status text, seats int, monthly_price money,"
    " currency text, started_on date, ends_on date?, auto_renew bool",
    "invoices": "account_id bigint, subscription_id bigint, number text, status text,"
    " currency text, amount money, tax money, invoice_date date, due_date date",
    "invoice_items": "invoice_id bigint, sku text, description text, quantity int,"
    " unit_price price, amount money, discountable bool",
    "payments": "invoice_id bigint, amount money, currency text, method text, status text,"
    " failure_reason text?, processor_ref text, paid_at ts?",
    "usage": "subscription_id bigint, metric text, quantity double, occurred_at ts,"
    " attributes jsonb, billable bool",
}
_SPECS: dict[str, list[tuple[str, str, bool]]] = {
    table: [
        (name, kind.rstrip("?"), kind.endswith("?"))
        for name, kind in (
            c.split()
            for c in f"id bigint, tenant_id text, {cols}, created_at ts, updated_at ts".split(",")
        )
    ]
    for table, cols in _COLUMNS.items()
}
SCHEMAS: dict[str, pa.Schema] = {
    t: pa.schema([pa.field(n, _KINDS[k][0], nullable=null) for n, k, null in spec])
    for t, spec in _SPECS.items()
}

_Row = tuple[Any, ...]
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ADJ = (
    "Blue",
    "Quantum",
    "Northern",
    "Silver",
    "Bright",
    "Rapid",
    "Golden",
    "Société",
    "Zürich",
    "Prime",
)
_NOUN = (
    "Labs",
    "Systems",
    "Foods",
    "Logistics",
    "Health",
    "Dynamics",
    "Works",
    "Analytics",
    "Media",
    "東京 Trading",
)
_SUFFIX = ("Inc", "LLC", "GmbH", "Ltd", "SA", "KK")
# (country, currency, tax in basis points); the repeats skew towards the US.
_COUNTRIES = (
    ("US", "USD", 0),
    ("US", "USD", 0),
    ("US", "USD", 0),
    ("CA", "CAD", 500),
    ("GB", "GBP", 2000),
    ("DE", "EUR", 1900),
    ("FR", "EUR", 2000),
    ("NL", "EUR", 2100),
    ("SG", "SGD", 900),
    ("AU", "AUD", 1000),
)
# Awkward text on purpose: quotes, commas and a newline must survive every export format.
_NOTES = (
    "Prefers invoices by post",
    'Asked for "net 45" terms, approved',
    "VIP, handle with care",
    "Migrated from legacy billing\nsee ticket 4411",
    "Reseller account",
)
_PLANS = (("starter", 1_900), ("growth", 4_900), ("scale", 9_900))  # price per seat, cents
# (sku, description, unit price in 1/10000, max quantity)
_SKUS = (
    ("SEAT-STD", "Standard seat", 190_000, 40),
    ("SEAT-PRO", "Pro seat", 490_000, 40),
    ("API-1K", "API calls (per 1k)", 12_500, 5_000),
    ("STOR-GB", "Storage, GB-month", 2_300, 900),
    ("CPU-HR", "Compute hour", 8_125, 700),
    ("SUPPORT", "Premium support", 1_500_000, 1),
    ("ONBOARD", "Onboarding package", 25_000_000, 1),
)


def _mix(**weights: int) -> tuple[str, ...]:
    return tuple(k for k, w in weights.items() for _ in range(w))


_ACCOUNT_STATUS = _mix(active=80, trialing=8, churned=12)
_SUB_STATUS = _mix(active=75, trialing=5, past_due=5, canceled=15)
_OLD_INVOICE_STATUS = _mix(paid=90, open=3, void=3, uncollectible=4)
_METHODS = _mix(card=7, ach=2, wire=1)
_FAILURES = ("card_declined", "insufficient_funds", "expired_card", "processing_error")
_TAGS = ("beta", "partner", "edu", "nonprofit", "gov")
_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")


def _us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _decimals(unscaled: list[int], dtype: pa.Decimal128Type) -> pa.Array:
    # Writing the 128-bit little-endian words directly is ~7x faster than converting Decimals.
    n = len(unscaled)
    words = array("q", bytes(16 * n))
    words[0::2] = array("q", unscaled)
    words[1::2] = array("q", [-(v < 0) for v in unscaled])  # sign-extend into the high word
    return pa.Array.from_buffers(dtype, n, [None, pa.py_buffer(words)])


def _finish(table: str, rows: list[_Row], first_id: int) -> tuple[pa.Table, list[int]]:
    """Number rows in created_at order, as a real sequence would; return the ids by row index."""
    schema = SCHEMAS[table]
    created = schema.names.index("created_at") - 1  # rows carry no id yet
    order = sorted(range(len(rows)), key=[r[created] for r in rows].__getitem__)
    ids = [0] * len(rows)
    for pos, i in enumerate(order):
        ids[i] = first_id + pos
    columns = list(zip(*(rows[i] for i in order), strict=True)) or [()] * (len(schema) - 1)
    arrays = [pa.array(range(first_id, first_id + len(rows)), pa.int64())]
    for field, values in zip(list(schema)[1:], columns, strict=True):
        if pa.types.is_decimal(field.type):
            arrays.append(_decimals(list(values), field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema), ids


def _build(
    rng: random.Random,
    counts: Mapping[str, tuple[int, ...]],
    start: int,
    end: int,
    first_ids: Mapping[str, int],
) -> dict[str, pa.Table]:
    """Generate every table with created_at/updated_at in [start, end] (microseconds)."""
    rand = rng.random

    # Inlined stand-ins for rng.choice/randint: generation spends most of its time picking.
    def choice(seq: Sequence[Any]) -> Any:
        return seq[int(rand() * len(seq))]

    def randint(lo: int, hi: int) -> int:
        return lo + int(rand() * (hi - lo + 1))

    def later(t: int) -> int:
        return t + int(rand() * (end - t))

    def touched(t: int, p: float) -> int:
        return later(t) if rand() < p else t

    def parents(tenant: int, n: int, pool: list[list[int]]) -> list[int]:
        # Every parent gets a child before any gets a second, so no parent is left childless.
        mine = pool[tenant]
        return [mine[k] if k < len(mine) else choice(mine) for k in range(n)]

    out: dict[str, pa.Table] = {}
    rows: list[_Row] = []
    accs: list[tuple[int, int, str, int]] = []  # tenant, created, currency, tax
    acc_pool: list[list[int]] = [[] for _ in TENANTS]
    for ti, tenant in enumerate(TENANTS):
        for _ in range(counts["accounts"][ti]):
            created = start + int(rand() * (end - start))
            company = f"{choice(_ADJ)} {choice(_NOUN)}"
            country, currency, tax = choice(_COUNTRIES)
            status = choice(_ACCOUNT_STATUS)
            meta = {
                "segment": choice(("smb", "mid", "enterprise")),
                "crm_id": randint(1, 99_999),
                "tags": rng.sample(_TAGS, randint(0, 2)),
            }
            rows.append(
                (
                    tenant,
                    f"{company} {choice(_SUFFIX)}",
                    f"billing+{randint(1, 9999)}@{company.split()[-1].lower()}.example",
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    country,
                    currency,
                    status,
                    rand() < 0.15,
                    randint(1, 250),
                    choice(_NOTES) if rand() < 0.1 else None,
                    json.dumps(meta),
                    created,
                    touched(created, 0.3),
                )
            )
            acc_pool[ti].append(len(accs))
            accs.append((ti, created, currency, tax))
    out["accounts"], acc_ids = _finish("accounts", rows, first_ids["accounts"])

    rows = []
    subs: list[tuple[int, int, str, int]] = []  # created, account id, currency, tax
    sub_pool: list[list[int]] = [[] for _ in TENANTS]
    day_end = end // _DAY_US
    for ti, tenant in enumerate(TENANTS):
        for a in parents(ti, counts["subscriptions"][ti], acc_pool):
            _, acc_created, currency, tax = accs[a]
            created = later(acc_created)
            plan, seat_price = choice(_PLANS)
            seats = randint(1, 60)
            status = choice(_SUB_STATUS)
            started = created // _DAY_US
            ends = min(started + randint(30, 365), day_end) if status == "canceled" else None
            rows.append(
                (
                    tenant,
                    acc_ids[a],
                    plan,
                    status,
                    seats,
                    seats * seat_price,
                    currency,
                    started,
                    ends,
                    status != "canceled" and rand() < 0.9,
                    created,
                    touched(created, 0.4),
                )
            )
            sub_pool[ti].append(len(subs))
            subs.append((created, acc_ids[a], currency, tax))
    out["subscriptions"], sub_ids = _finish("subscriptions", rows, first_ids["subscriptions"])

    # Invoice totals are the sums of their items, so invoices are numbered after the items exist.
    invs: list[list[Any]] = []
    inv_pool: list[list[int]] = [[] for _ in TENANTS]
    for ti, tenant in enumerate(TENANTS):
        for s in parents(ti, counts["invoices"][ti], sub_pool):
            sub_created, account_id, currency, tax = subs[s]
            created = later(sub_created)
            day = created // _DAY_US
            if end - created < 30 * _DAY_US:
                status = "open" if rand() < 0.55 else "paid"
            else:
                status = choice(_OLD_INVOICE_STATUS)
            issued = _EPOCH + timedelta(days=day)
            number = f"{tenant.upper()}-{issued:%Y%m%d}-{rng.getrandbits(32):08X}"
            inv_pool[ti].append(len(invs))
            invs.append(
                [
                    tenant,
                    account_id,
                    sub_ids[s],
                    number,
                    status,
                    currency,
                    0,
                    tax,
                    day,
                    day + choice((14, 30, 30, 45)),
                    created,
                    touched(created, 0.6 if status == "paid" else 0.2),
                ]
            )
    items = []
    for ti, tenant in enumerate(TENANTS):
        n_items = max(counts["invoice_items"][ti], len(inv_pool[ti]))
        for i in parents(ti, n_items, inv_pool):
            sku, description, unit, most = choice(_SKUS)
            quantity = randint(1, most)
            amount = (quantity * unit + 50) // 100  # 4 to 2 decimals, half up
            invs[i][6] += amount
            items.append(
                (
                    i,
                    tenant,
                    sku,
                    description,
                    quantity,
                    unit,
                    amount,
                    rand() < 0.7,
                    invs[i][10],
                    touched(invs[i][10], 0.05),
                )
            )
    for inv in invs:
        inv[7] = (inv[6] * inv[7] + 5_000) // 10_000  # tax from basis points, half up
    out["invoices"], inv_ids = _finish("invoices", [tuple(v) for v in invs], first_ids["invoices"])
    item_rows = [(it[1], inv_ids[it[0]], *it[2:]) for it in items]
    out["invoice_items"], _ = _finish("invoice_items", item_rows, first_ids["invoice_items"])

    rows = []
    for i, inv in enumerate(invs):
        status, at = inv[4], inv[10]
        failures = (
            int(rand() < 0.08)
            if status == "paid"
            else int(rand() < 0.15)
            if status == "open"
            else randint(1, 3)
            if status == "uncollectible"
            else 0
        )
        for attempt in range(failures + (status == "paid")):
            at = later(at)
            ok = attempt == failures  # the attempt after the failures is the one that succeeds
            outcome = ("refunded" if rand() < 0.02 else "succeeded") if ok else "failed"
            rows.append(
                (
                    inv[0],
                    inv_ids[i],
                    inv[6] + inv[7],
                    inv[5],
                    choice(_METHODS),
                    outcome,
                    None if ok else choice(_FAILURES),
                    f"ch_{rng.getrandbits(96):024x}",
                    min(at + randint(0, 3_000_000), end) if ok else None,
                    at,
                    later(at) if outcome == "refunded" else touched(at, 0.1),
                )
            )
    out["payments"], _ = _finish("payments", rows, first_ids["payments"])

    rows = []
    for ti, tenant in enumerate(TENANTS):
        for s in parents(ti, counts["usage"][ti], sub_pool):
            created = later(subs[s][0])
            metric = choice(("api_calls", "storage_gb", "compute_hours"))
            used = (
                float(randint(1, 5_000))
                if metric == "api_calls"
                else round(rand() * (500 if metric == "storage_gb" else 24), 4)
            )
            attributes = f'{{"region": "{choice(_REGIONS)}", "source": "{choice(("sdk", "api"))}"}}'
            rows.append(
                (
                    tenant,
                    sub_ids[s],
                    metric,
                    used,
                    max(start, created - randint(0, 300_000_000)),
                    attributes,
                    rand() < 0.95,
                    created,
                    touched(created, 0.05),
                )
            )
    out["usage"], _ = _finish("usage", rows, first_ids["usage"])
    return out


def generate(now: datetime, scale: float = 1.0, seed: int = 7) -> dict[str, pa.Table]:
    """Build every table; created_at/updated_at span the 90 days up to `now` - 1 hour.

    Ids run 1..N per table in created_at order, shared by the tenants like one sequence.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    counts = {t: tuple(max(1, round(n * w * scale)) for w in _WEIGHTS) for t, n in _BASE.items()}
    end = _us(now) - 3_600_000_000
    return _build(random.Random(seed), counts, end - 90 * _DAY_US, end, dict.fromkeys(TABLES, 1))


def table_ddl(dialect: Literal["postgresql", "sqlite"]) -> dict[str, str]:
    """CREATE TABLE per table; SQLite gets declared type names that carry the intended types."""
    col = {"postgresql": 1, "sqlite": 2}[dialect]
    return {
        table: f"CREATE TABLE {table} (\n  "
        + ",\n  ".join(
            f"{name} {_KINDS[kind][col]}"
            + (" PRIMARY KEY" if name == "id" else "")
            + ("" if nullable or name == "id" else " NOT NULL")
            for name, kind, nullable in spec
        )
        + "\n)"
        for table, spec in _SPECS.items()
    }


def index_ddl() -> dict[str, str]:
    """The (tenant_id, updated_at) index per table; the same text in both dialects."""
    return {
        t: f"CREATE INDEX {t}_tenant_updated_idx ON {t} (tenant_id, updated_at)" for t in TABLES
    }


@dataclass(frozen=True)
class Mutation:
    """An incremental change: whole new rows, and per-row new values for existing ids."""

    now: datetime
    inserts: Mapping[str, pa.Table]  # full rows with SCHEMAS[table], fresh ids
    updates: Mapping[str, pa.Table]  # `id` plus the columns to set, updated_at among them

    def changed(self) -> dict[str, int]:
        """Rows each table gains or changes once applied."""
        return {
            t: (self.inserts[t].num_rows if t in self.inserts else 0)
            + (self.updates[t].num_rows if t in self.updates else 0)
            for t in TABLES
        }


def mutate(now: datetime, tables_present: dict[str, int], seed: int = 11) -> Mutation:
    """New rows per tenant for every table; updates to ~0.5% of accounts, subscriptions, invoices.

    `tables_present` maps each table to its highest id (its row count, as load_* returns).
    New rows get created_at/updated_at in the 5 minutes before `now` - 5 minutes; updated rows
    get updated_at = `now` - 5 minutes.
    """
    rng = random.Random(seed)
    choice = rng.choice
    end = _us(now) - 300_000_000
    counts = {t: (n,) * len(TENANTS) for t, n in _MUTATION_ROWS.items()}
    inserts = _build(
        rng, counts, end - 300_000_000, end, {t: tables_present[t] + 1 for t in TABLES}
    )
    stamp = _EPOCH + timedelta(microseconds=end)
    today = stamp.date()
    # table -> new values for one row; values a real billing workflow would write.
    setters: dict[str, Callable[[], dict[str, Any]]] = {
        "accounts": lambda: {"status": choice(("active", "churned")), "notes": choice(_NOTES)},
        "subscriptions": lambda: {"status": "canceled", "ends_on": today, "auto_renew": False},
        "invoices": lambda: {"status": "paid"},
    }
    updates: dict[str, pa.Table] = {}
    for table, setter in setters.items():
        present = tables_present[table]
        ids = sorted(rng.sample(range(1, present + 1), min(present, max(1, present // 200))))
        if not ids:
            continue
        values = [setter() for _ in ids]
        names = ["id", *values[0], "updated_at"]
        updates[table] = pa.table(
            {
                "id": ids,
                **{c: [v[c] for v in values] for c in names[1:-1]},
                "updated_at": [stamp] * len(ids),
            },
            schema=pa.schema([SCHEMAS[table].field(c) for c in names]),
        )
    return Mutation(now=now, inserts=inserts, updates=updates)


def _ordered(tables: Mapping[str, pa.Table]) -> list[tuple[str, pa.Table]]:
    if unknown := set(tables) - set(TABLES):
        raise ValueError(f"not demo tables: {sorted(unknown)}")
    return [(t, tables[t]) for t in TABLES if t in tables]


def _counts(execute: Callable[..., Any], names: Iterable[str]) -> dict[str, int]:
    return {t: int(execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in names}


def _insert_sql(table: str, names: list[str], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"


def _sqlite_rows(table: pa.Table) -> Iterable[_Row]:
    """Rows in the SQLite text formats: UTC 'YYYY-MM-DD HH:MM:SS.ffffff', ISO dates, exact
    decimal strings, booleans as 0/1."""
    columns = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            col = col.cast(pa.timestamp("us")).cast(pa.string())  # naive UTC, always 6 digits
        elif pa.types.is_decimal(field.type) or pa.types.is_date(field.type):
            col = col.cast(pa.string())
        elif pa.types.is_boolean(field.type):
            col = col.cast(pa.int8())
        columns.append(col.to_pylist())
    return zip(*columns, strict=True)


def _sqlite(path: str | Path) -> closing[sqlite3.Connection]:
    # Autocommit mode, so the explicit BEGIN/COMMIT make each call exactly one transaction; on
    # an error the connection closes with the transaction open, which rolls it back.
    return closing(sqlite3.connect(path, isolation_level=None))


def load_sqlite(path: str | Path, tables: dict[str, pa.Table]) -> dict[str, int]:
    """(Re)create the given tables and their indexes in one transaction; return row counts.

    NUMERIC(18,2) columns have NUMERIC affinity, so SQLite itself turns the decimal strings into
    REAL/INTEGER; that is exact below 15 significant digits, far above these amounts.
    """
    ddl, indexes = table_ddl("sqlite"), index_ddl()
    with _sqlite(path) as conn:
        conn.execute("BEGIN")
        for name, table in _ordered(tables):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute(ddl[name])
            conn.executemany(_insert_sql(name, table.column_names, "?"), _sqlite_rows(table))
            conn.execute(indexes[name])  # after the rows: one build beats per-row maintenance
        conn.execute("COMMIT")
        return _counts(conn.execute, tables)


def apply_mutation_sqlite(path: str | Path, mutation: Mutation) -> dict[str, int]:
    """Apply `mutation` in one transaction; return rows inserted plus rows updated per table."""
    changed = dict.fromkeys(TABLES, 0)
    with _sqlite(path) as conn:
        conn.execute("BEGIN")
        for name in TABLES:
            if (new := mutation.inserts.get(name)) is not None:
                sql = _insert_sql(name, new.column_names, "?")
                changed[name] += conn.executemany(sql, _sqlite_rows(new)).rowcount
            if (upd := mutation.updates.get(name)) is not None:
                cols = [c for c in upd.column_names if c != "id"]
                sql = f"UPDATE {name} SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?"
                rows = _sqlite_rows(upd.select([*cols, "id"]))
                changed[name] += conn.executemany(sql, rows).rowcount
        conn.execute("COMMIT")
    return changed


def _copy(conn: Any, name: str, table: pa.Table) -> int:
    # Arrow's CSV writer quotes every string and leaves nulls unquoted and empty, which is exactly
    # how COPY's csv format tells NULL from ''; it is far faster than binding row by row.
    # Zoned timestamps format ~20x slower than naive ones, so write naive UTC and have the
    # session (for this transaction) read them as UTC.
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    naive = [
        c.cast(pa.timestamp("us")) if pa.types.is_timestamp(c.type) else c for c in table.columns
    ]
    buf = io.BytesIO()
    pacsv.write_csv(
        pa.table(naive, names=table.column_names), buf, pacsv.WriteOptions(include_header=False)
    )
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {name} ({', '.join(table.column_names)}) FROM STDIN (FORMAT csv)") as copy,
    ):
        copy.write(buf.getbuffer())
    return int(table.num_rows)


def load_postgres(url: str, tables: dict[str, pa.Table]) -> dict[str, int]:
    """(Re)create the given tables and their indexes, COPY the rows in; return row counts."""
    import psycopg  # only the PostgreSQL paths need it

    ddl, indexes = table_ddl("postgresql"), index_ddl()
    with psycopg.connect(url) as conn:  # one transaction, committed when the block ends
        for name, table in _ordered(tables):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute(ddl[name])
            _copy(conn, name, table)
            conn.execute(indexes[name])
            conn.execute(f"ANALYZE {name}")
        return _counts(conn.execute, tables)


def apply_mutation_postgres(url: str, mutation: Mutation) -> dict[str, int]:
    """Apply `mutation` in one transaction; return rows inserted plus rows updated per table."""
    import psycopg

    changed = dict.fromkeys(TABLES, 0)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for name in TABLES:
            if (new := mutation.inserts.get(name)) is not None:
                changed[name] += _copy(conn, name, new)
            if (upd := mutation.updates.get(name)) is not None:
                # Explicit casts, so text-typed parameters land in json/uuid/numeric columns.
                pg = {n: _KINDS[k][1] for n, k, _ in _SPECS[name]}
                cols = [c for c in upd.column_names if c != "id"]
                sets = ", ".join(f"{c} = %s::{pg[c]}" for c in cols)
                values = zip(*(upd.column(c).to_pylist() for c in [*cols, "id"]), strict=True)
                cur.executemany(f"UPDATE {name} SET {sets} WHERE id = %s", list(values))
                changed[name] += cur.rowcount
    return changed
