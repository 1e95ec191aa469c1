"""Hard deletes captured in the source PostgreSQL: byob's `byob_deleted_rows` table, the
trigger function that fills it, and one `AFTER DELETE` trigger per ``capture_deletes`` model.

The trigger records (model, tenant, primary key as jsonb, ``clock_timestamp()``). Transfers
read the rows whose deletion time falls in their window (``select_sql``) and deliver them as
tombstones; the settle lag covers a delete committed late as it covers a late update. Rows
are pruned (``PostgresDeleteCapture.prune``) once every connection of the tenant that
receives the model has a high-water mark past them.

The function is SECURITY DEFINER with the search_path it was created with, so the role that
deletes rows needs no grant on the table, and a session's own search_path cannot redirect the
insert. byob's source user needs SELECT on it to read tombstones, DELETE to prune."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

import psycopg

from byob.domain.models import ModelSpec, ResolvedModel
from byob.domain.types import Kind
from byob.errors import SourceError
from byob.sources.base import quote_ident, quote_table

TABLE = "byob_deleted_rows"
FUNCTION = "byob_record_delete"
_TABLE_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model text NOT NULL,
    tenant text,
    primary_key jsonb NOT NULL,
    deleted_at timestamptz NOT NULL
)"""
_INDEX_DDL = f"CREATE INDEX IF NOT EXISTS {TABLE}_window ON {TABLE} (model, tenant, deleted_at)"
# Arguments: the model, its tenant column, then its key columns.
_FUNCTION_DDL = f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $byob$
DECLARE
    old_row jsonb := to_jsonb(OLD);
    deleted_key jsonb := '{{}}'::jsonb;
BEGIN
    FOR i IN 2 .. TG_NARGS - 1 LOOP
        deleted_key := deleted_key || jsonb_build_object(TG_ARGV[i], old_row -> TG_ARGV[i]);
    END LOOP;
    INSERT INTO {TABLE} (model, tenant, primary_key, deleted_at)
    VALUES (TG_ARGV[0], old_row ->> TG_ARGV[1], deleted_key, clock_timestamp());
    RETURN NULL;
END
$byob$"""


def trigger_name(model: str) -> str:
    return f"byob_deletes_{model}"[:63]


def capture_sql(spec: ModelSpec) -> list[str]:
    """The statements installing capture for a model (idempotent; run in one transaction)."""
    args = ", ".join(_literal(a) for a in (spec.name, spec.tenant_column, *spec.primary_key))
    table = quote_table(spec.table)
    trigger = quote_ident(trigger_name(spec.name))
    return [
        _TABLE_DDL,
        _INDEX_DDL,
        _FUNCTION_DDL,
        f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
        f"CREATE TRIGGER {trigger} AFTER DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}({args})",
    ]


def select_sql(
    model: ResolvedModel,
    source_types: Mapping[str, str],
    *,
    has_low: bool,
    setting: Callable[[int, str], str],
) -> str:
    """The tombstones of one tenant's window: bound values 1 model, 2 tenant, 3 window high,
    4 window low (``setting(n, type)`` is the bound value's SQL). Key columns are cast back to
    their source types from the jsonb the trigger stored; strings and decimals stay text, as a
    row read of them would be."""
    spec = model.spec
    select: dict[str, str] = {}
    for source_name in (*spec.primary_key, spec.tenant_column):
        column = model.column(source_name)
        value = (
            "d.tenant"
            if source_name == spec.tenant_column
            else f"(d.primary_key ->> {_literal(source_name)})"
        )
        if column.hashed:
            # Hashed from the text a row read gives (value::text), whatever form jsonb holds
            # it in (a timestamp's 'T'), so a tombstone's key hashes as its rows' did.
            value = f"({value})::{source_types[source_name]}::text"
        elif column.type.kind not in (Kind.STRING, Kind.DECIMAL):
            value = f"{value}::{source_types[source_name]}"
        select.setdefault(column.name, value)
    cursor_at = (
        "d.deleted_at"
        if model.cursor.type.kind is Kind.TIMESTAMPTZ
        else "(d.deleted_at AT TIME ZONE 'UTC')"  # naive cursors hold UTC wall-clock time
    )
    select[model.cursor.name] = cursor_at
    columns = ", ".join(f"{value} AS {quote_ident(name)}" for name, value in select.items())
    where = [
        f"d.model = {setting(1, 'text')}",
        f"d.tenant = {setting(2, 'text')}",
        f"d.deleted_at <= {setting(3, 'timestamptz')}",
    ]
    if has_low:
        where.append(f"d.deleted_at > {setting(4, 'timestamptz')}")
    return f"SELECT {columns} FROM {TABLE} AS d WHERE {' AND '.join(where)} ORDER BY d.deleted_at"


def missing_table_error(model: str, exc_text: str) -> SourceError | None:
    """The error to raise when a read failed because capture was never installed."""
    if re.search(rf'relation "(?:\w+\.)?{TABLE}" does not exist', exc_text):
        return SourceError(
            f"model {model!r} has capture_deletes = true but {TABLE} does not exist in the "
            f"source; install capture with `byob models capture-deletes {model} --apply` (or "
            "give its printed SQL to a DBA)",
            field="capture_deletes",
        )
    return None


class PostgresDeleteCapture:
    """Installs, checks and prunes delete capture in the models file's [source] database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def install(self, spec: ModelSpec) -> None:
        try:
            with psycopg.connect(self.url) as conn, conn.transaction():
                for statement in capture_sql(spec):
                    conn.execute(statement)  # built from quoted names and literals
        except psycopg.Error as exc:
            raise SourceError(
                f"model {spec.name!r}: installing delete capture on {spec.table} failed: "
                f"{str(exc).strip()}; run `byob models capture-deletes {spec.name}` and give "
                "the SQL to a role that owns the table"
            ) from exc

    def installed(self, spec: ModelSpec) -> bool:
        """Whether the model's trigger is on its table, enabled, and byob's table exists."""
        try:
            with psycopg.connect(self.url) as conn:
                row = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL AND EXISTS (SELECT 1 FROM pg_trigger "
                    "WHERE tgrelid = to_regclass(%s) AND tgname = %s AND tgenabled <> 'D')",
                    (TABLE, quote_table(spec.table), trigger_name(spec.name)),
                ).fetchone()
        except psycopg.Error as exc:
            raise SourceError(f"checking delete capture failed: {str(exc).strip()}") from exc
        return bool(row and row[0])

    def tenants(self, model: str) -> list[str]:
        """The tenants that have captured deletes of the model waiting."""
        with psycopg.connect(self.url) as conn:
            return [
                str(r[0])
                for r in conn.execute(
                    f"SELECT DISTINCT tenant FROM {TABLE} WHERE model = %s AND tenant IS NOT NULL",
                    (model,),
                )
            ]

    def prune(self, model: str, until: Mapping[str, datetime]) -> int:
        """Delete each tenant's captured deletes of the model up to its time in ``until``."""
        pruned = 0
        try:
            with psycopg.connect(self.url) as conn, conn.transaction():
                for tenant, bound in until.items():
                    cur = conn.execute(
                        f"DELETE FROM {TABLE} WHERE model = %s AND tenant = %s "
                        "AND deleted_at <= %s",
                        (model, tenant, bound),
                    )
                    pruned += cur.rowcount
        except psycopg.Error as exc:
            raise SourceError(
                f"pruning the captured deletes of model {model!r} failed: {str(exc).strip()}"
            ) from exc
        return pruned


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
