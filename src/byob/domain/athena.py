"""Glue/Athena definitions for a model: the external Parquet table with partition projection,
and the `<model>_latest` view stored the way Athena stores views. Pure data."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from byob.domain import layout
from byob.domain.layout import join
from byob.domain.models import DELETED_FLAG, PARTITION_COLUMN
from byob.domain.types import ColumnType

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
LATEST_SUFFIX = "_latest"
RANK_COLUMN = "byob_version_rank"

GlueColumn = dict[str, str]


def glue_columns(
    columns: Sequence[tuple[str, ColumnType]], comments: Mapping[str, str] | None = None
) -> list[GlueColumn]:
    """Glue columns; ``comments`` (by column name) become their Comment."""
    out = []
    for name, ctype in columns:
        column = {"Name": name, "Type": ctype.glue_type()}
        if comments and comments.get(name):
            column["Comment"] = comments[name]
        out.append(column)
    return out


def table_location(bucket: str, prefix: str, model: str) -> str:
    return f"s3://{join(bucket, prefix, model)}/"


def projection_start(parameters: dict[str, str]) -> date | None:
    text = parameters.get("projection.dt.range", "").split(",")[0]
    return date.fromisoformat(text) if text else None


def table_input(
    *,
    model: str,
    bucket: str,
    prefix: str,
    columns: list[GlueColumn],
    earliest: date,
    description: str = "",
) -> dict[str, Any]:
    """An external Parquet table partitioned by dt, with Athena partition projection: new days
    are visible without registering partitions (the granted policy allows none)."""
    location = table_location(bucket, prefix, model)
    described = {"Description": description} if description else {}
    return {
        "Name": model,
        **described,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "EXTERNAL": "TRUE",
            "classification": "parquet",
            "parquet.compression": "SNAPPY",
            "projection.enabled": "true",
            f"projection.{PARTITION_COLUMN}.type": "date",
            f"projection.{PARTITION_COLUMN}.format": "yyyy-MM-dd",
            f"projection.{PARTITION_COLUMN}.range": f"{earliest.isoformat()},NOW",
            f"projection.{PARTITION_COLUMN}.interval": "1",
            f"projection.{PARTITION_COLUMN}.interval.unit": "DAYS",
            "storage.location.template": f"{location}{PARTITION_COLUMN}=${{{PARTITION_COLUMN}}}/",
        },
        "PartitionKeys": [{"Name": PARTITION_COLUMN, "Type": "string"}],
        "StorageDescriptor": {
            "Columns": columns,
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
        },
    }


def merge_columns(existing: list[GlueColumn], current: list[GlueColumn]) -> list[GlueColumn]:
    """Columns in the table after a transfer: dropped source columns stay (old files still
    have them), added ones are appended, widened types take the wider type, and a current
    column's comment is its description now (none: no comment)."""
    by_name = {c["Name"]: c for c in current}
    merged = [by_name.get(c["Name"], c) for c in existing]
    known = {c["Name"] for c in existing}
    merged += [c for c in current if c["Name"] not in known]
    return merged


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def latest_view_sql(
    *,
    schema: str,
    model: str,
    columns: list[str],
    primary_key: Sequence[str],
    cursor: str,
    snapshot: datetime | None = None,
) -> str:
    """The newest version of each row by primary key. Delivery is append-only, so every
    version is kept; most readers want the current one. Only the files of the newest full
    refresh (``snapshot``, its start) and of the transfers after it count: a row deleted at
    the source before that refresh is in no later file, and so not in the view. A key whose
    newest version is a deletion (``_byob_deleted``: a soft delete, or a tombstone) is not in
    the view either. Valid Trino (Athena engine v3) SQL; a file's transfer is the start time
    in its name."""
    cols = ", ".join(_quote(c) for c in columns)
    partition = ", ".join(_quote(k) for k in primary_key)
    order = f"{_quote(cursor)} DESC, {_quote(PARTITION_COLUMN)} DESC"
    live = ""
    if DELETED_FLAG in columns:
        # Files written before the model reported deletes lack the column: NULL is live. On
        # a tie of cursor and day (a delete in the millisecond of the last update), the
        # deletion is the newer: it cannot precede the version it deletes.
        deleted = f"coalesce({_quote(DELETED_FLAG)}, false)"
        order += f", {deleted} DESC"
        live = f" AND NOT {deleted}"
    since = ""
    if snapshot is not None:
        stamp = layout.TransferStamp(started_at=snapshot)
        since = (
            f" WHERE {_quote(PARTITION_COLUMN)} >= '{stamp.date}' AND "
            f"regexp_extract(\"$path\", '_([0-9]{{14}})\\.parquet$', 1) >= '{stamp.timestamp}'"
        )
    return (
        f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY {partition} "
        f"ORDER BY {order}) AS {RANK_COLUMN} "
        f"FROM {_quote(schema)}.{_quote(model)}{since}) WHERE {RANK_COLUMN} = 1{live}"
    )


def presto_type(glue_type: str) -> str:
    """The type Athena records for a view column (Trino's names) from a Glue column type."""
    if glue_type.startswith("array<") and glue_type.endswith(">"):
        return f"array({presto_type(glue_type[6:-1])})"
    renamed = {
        "int": "integer",
        "float": "real",
        "string": "varchar",
        "binary": "varbinary",
        "timestamp": "timestamp(3)",
    }
    return renamed.get(glue_type, glue_type)


def view_input(
    *,
    schema: str,
    model: str,
    columns: list[GlueColumn],
    primary_key: Sequence[str],
    cursor: str,
    snapshot: datetime | None = None,
) -> dict[str, Any]:
    """A Glue table that Athena reads as a view: VIRTUAL_VIEW with the Presto view encoding
    (base64 JSON in ViewOriginalText), as Athena's own CREATE VIEW stores it."""
    names = [c["Name"] for c in columns]
    sql = latest_view_sql(
        schema=schema,
        model=model,
        columns=names,
        primary_key=primary_key,
        cursor=cursor,
        snapshot=snapshot,
    )
    definition = {
        "originalSql": sql,
        "catalog": "awsdatacatalog",
        "schema": schema,
        "columns": [{"name": c["Name"], "type": presto_type(c["Type"])} for c in columns],
        "owner": "byob",
        "runAsInvoker": False,
        "properties": {},
    }
    encoded = base64.b64encode(json.dumps(definition).encode()).decode()
    return {
        "Name": model + LATEST_SUFFIX,
        "TableType": "VIRTUAL_VIEW",
        "Parameters": {"presto_view": "true", "comment": "Presto View"},
        "ViewOriginalText": f"/* Presto View: {encoded} */",
        "ViewExpandedText": "/* Presto View */",
        "StorageDescriptor": {"Columns": columns, "SerdeInfo": {}, "Location": ""},
        "PartitionKeys": [],
    }


def decode_view(original_text: str) -> dict[str, Any]:
    """The JSON definition inside a Presto view's ViewOriginalText."""
    body = original_text.removeprefix("/* Presto View: ").removesuffix(" */")
    definition: dict[str, Any] = json.loads(base64.b64decode(body))
    return definition
