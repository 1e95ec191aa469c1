"""The benchmark's table shapes: one table each, every column a deterministic SQL expression of
the series value, so two builds with the same parameters hold identical rows.

`invoices` is the original shape (and the default); the others stress one kind of decoding
each: numeric-heavy, text/jsonb-heavy, uuid-keyed, and a narrow table of 3 columns where
per-row overhead is all there is.

In every expression `i` is the series value, `t` the tenant number, `a` a pseudo-random amount
in cents and `ts` a timestamp with milliseconds in 2020–2025 (see ``SERIES``). mod() rather than
`%`, which psycopg reserves for placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from byob.domain.types import from_postgres
from byob.engine.arrow_types import arrow_type

# Columns every shape starts with: the model's tenant column, primary key and cursor.
TENANT = ("tenant_id", "text NOT NULL", "'tenant_' || lpad(t::text, 3, '0')")
UPDATED_AT = ("updated_at", "timestamptz NOT NULL", "ts + mod(i, 10000) * INTERVAL '1 minute'")

# The values each column expression may use; `{tenant}` is the layout's tenant expression.
SERIES = """
SELECT
    i,
    {tenant} AS t,
    mod(i * 104729, 10000000) AS a,
    TIMESTAMPTZ '2020-01-01 00:00:00+00'
        + mod(i, 1800) * INTERVAL '1 day'
        + mod(i, 86400) * INTERVAL '1 second'
        + mod(i, 997) * INTERVAL '1 millisecond' AS ts
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
"""


@dataclass(frozen=True)
class Shape:
    """One benchmark table: its columns as (name, SQL type, generating expression)."""

    name: str
    table: str
    about: str
    columns: tuple[tuple[str, str, str], ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.columns)

    @property
    def ddl(self) -> str:
        body = ",\n    ".join(f"{name} {sql_type}" for name, sql_type, _ in self.columns)
        return f"CREATE TABLE {self.table} (\n    {body}\n)"

    @property
    def insert(self) -> str:
        """The INSERT … SELECT filling one chunk of ids (`{tenant}` still to be substituted)."""
        exprs = ",\n    ".join(expr for _, _, expr in self.columns)
        return f"INSERT INTO {self.table}\nSELECT\n    {exprs}\nFROM ({SERIES}) AS s"

    @property
    def key(self) -> str:
        """The primary key column (the first)."""
        return self.columns[0][0]

    @property
    def target_schema(self) -> pa.Schema:
        """What byob's type rules deliver for these columns: the floors' output schema."""
        return pa.schema(
            [
                (name, arrow_type(from_postgres(sql_type.removesuffix(" NOT NULL"))))
                for name, sql_type, _ in self.columns
            ]
        )


INVOICES = Shape(
    name="invoices",
    table="invoices",
    about="14 columns: bigint, text, varchar(3), 3 × numeric(18,2), 2 × date, "
    "2 × timestamptz, a mostly-NULL text",
    columns=(
        ("id", "bigint NOT NULL", "i"),
        TENANT,
        ("account_id", "bigint NOT NULL", "1 + mod(i * 7919, 100000)"),
        ("invoice_number", "text NOT NULL", "'INV-' || lpad(i::text, 10, '0')"),
        (
            "status",
            "text NOT NULL",
            "(ARRAY['draft','open','paid','void','uncollectible'])[1 + mod(i / 7, 5)]",
        ),
        (
            "currency",
            "varchar(3) NOT NULL",
            "(ARRAY['USD','EUR','GBP','JPY','CAD'])[1 + mod(i / 3, 5)]",
        ),
        ("amount", "numeric(18,2) NOT NULL", "a / 100.0"),
        ("tax", "numeric(18,2) NOT NULL", "round(a * 0.002, 2)"),
        (
            "balance",
            "numeric(18,2) NOT NULL",
            "CASE WHEN mod(i / 7, 5) = 2 THEN 0 ELSE round(a * 0.012, 2) END",
        ),
        ("invoice_date", "date NOT NULL", "DATE '2020-01-01' + mod(i, 1800)::int"),
        ("due_date", "date NOT NULL", "DATE '2020-01-31' + mod(i, 1800)::int"),
        ("created_at", "timestamptz NOT NULL", "ts"),
        UPDATED_AT,
        ("notes", "text", "CASE WHEN mod(i, 50) = 0 THEN 'note ' || md5(i::text) END"),
    ),
)

NUMERIC = Shape(
    name="numeric",
    table="bench_numeric",
    about="11 columns, 7 of them numeric (precision 10–18, scale 0–6, one mostly NULL)",
    columns=(
        ("id", "bigint NOT NULL", "i"),
        TENANT,
        UPDATED_AT,
        ("quantity", "numeric(10,0) NOT NULL", "1 + mod(i, 500)"),
        ("unit_price", "numeric(12,4) NOT NULL", "round(a / 3.0, 4) / 100"),
        ("amount", "numeric(18,2) NOT NULL", "a / 100.0"),
        ("tax", "numeric(18,2) NOT NULL", "round(a * 0.002, 2)"),
        ("discount", "numeric(18,2)", "CASE WHEN mod(i, 10) = 0 THEN round(a * 0.05, 2) END"),
        ("fx_rate", "numeric(10,6) NOT NULL", "round(0.5 + mod(i, 99991) / 100000.0, 6)"),
        ("cost", "numeric(15,3) NOT NULL", "round(a * 0.00731, 3)"),
        ("weight", "double precision NOT NULL", "a / 7.0"),
    ),
)

TEXT_JSONB = Shape(
    name="text_jsonb",
    table="bench_text_jsonb",
    about="8 columns: a title, a ~200-character body, 2 jsonb documents, a mostly-NULL text",
    columns=(
        ("id", "bigint NOT NULL", "i"),
        TENANT,
        UPDATED_AT,
        ("title", "text NOT NULL", "'Order ' || i || ' for account ' || mod(i * 7919, 100000)"),
        ("body", "text NOT NULL", "repeat(md5(i::text) || ' ', 6)"),
        (
            "attributes",
            "jsonb NOT NULL",
            "jsonb_build_object('sku', 'SKU-' || mod(i, 9973), 'qty', mod(i, 17), "
            "'price', a / 100.0, 'gift', mod(i, 3) = 0, 'channel', "
            "(ARRAY['web','store','phone'])[1 + mod(i, 3)])",
        ),
        (
            "tags",
            "jsonb NOT NULL",
            "jsonb_build_array('t' || mod(i, 7), 't' || mod(i, 11), 't' || mod(i, 13))",
        ),
        ("note", "text", "CASE WHEN mod(i, 20) = 0 THEN 'note ' || md5(i::text) END"),
    ),
)

UUID = Shape(
    name="uuid",
    table="bench_uuid",
    about="8 columns keyed by uuid: 4 uuids (one mostly NULL), a bigint, a text, a timestamptz",
    columns=(
        ("id", "uuid NOT NULL", "md5(i::text)::uuid"),
        TENANT,
        UPDATED_AT,
        ("account_id", "uuid NOT NULL", "md5('account' || mod(i * 7919, 100000))::uuid"),
        ("order_id", "uuid NOT NULL", "md5('order' || i)::uuid"),
        ("parent_id", "uuid", "CASE WHEN mod(i, 4) = 0 THEN md5('parent' || i)::uuid END"),
        ("seq", "bigint NOT NULL", "i"),
        ("status", "text NOT NULL", "(ARRAY['new','open','closed'])[1 + mod(i / 7, 3)]"),
    ),
)

NARROW = Shape(
    name="narrow",
    table="bench_narrow",
    about="3 columns: bigint id, text tenant, timestamptz cursor",
    columns=(("id", "bigint NOT NULL", "i"), TENANT, UPDATED_AT),
)

SHAPES = {s.name: s for s in (INVOICES, NUMERIC, TEXT_JSONB, UUID, NARROW)}
