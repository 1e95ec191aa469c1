"""Words the wizard shows: what each check means and where to fix it, and, once a connection
is active, what arrives where, when, and how to query it. Pure functions of a connection."""

from __future__ import annotations

from byob.domain import layout
from byob.domain.athena import LATEST_SUFFIX
from byob.domain.connections import Connection, ConnectionType

CHECK_LABELS = {
    "assume_role": "Assume your IAM role with the external ID",
    "external_id_required": "Your role refuses callers without the external ID",
    "credentials": "The access key works",
    "bucket_region": "The bucket exists in the chosen region",
    "write_test_object": "Write a test object",
    "delete_test_object": "Delete the test object",
    "workgroup": "The Athena workgroup",
    "glue_database": "The Glue database",
    "athena_query": "A test Athena query",
    "athena_output_location": "Where Athena writes query results",
    "list_base_path": "List the files under the base path",
    "read_object": "Read a file",
    "write_refused": "The role cannot write to your bucket",
}

# What failed, by the check that marked a connection failing: transfers mark it "transfer";
# a validation check would read as its label.
FAILING_HEADLINES = {"transfer": "Transfers have failed"}


def failing_headline(check: str) -> str:
    """What stopped working, as the start of a sentence a person reads (the check's
    identifier is for scripts: the API and --json)."""
    if check in FAILING_HEADLINES:
        return FAILING_HEADLINES[check]
    return f"The check “{CHECK_LABELS.get(check, check.replace('_', ' '))}” has failed"


def _prefix(conn: Connection, model: str) -> str:
    return layout.join(conn.bucket, layout.model_prefix(conn.data_prefix, model))


def layout_lines(conn: Connection, models: list[str]) -> list[dict[str, str]]:
    """Where each model's files and manifests land."""
    return [
        {
            "model": m,
            "data": f"s3://{_prefix(conn, m)}/dt=YYYY-MM-DD/<part>_<YYYYMMDDHHMMSS>.parquet",
            "manifest": "s3://"
            + layout.join(
                conn.bucket,
                conn.data_prefix,
                layout.MANIFESTS_FOLDER,
                m,
                "dt=YYYY-MM-DD",
                "manifest_<transfer id>.json",
            ),
        }
        for m in models or ["<model>"]
    ]


def examples(conn: Connection, models: list[str]) -> list[dict[str, str]]:
    """Ready-to-run queries over the delivered data, for the engines that fit the connection."""
    model = models[0] if models else "<model>"
    if conn.type is ConnectionType.ATHENA:
        sql = (
            f'-- Every row version delivered so far (run in workgroup "{conn.workgroup}")\n'
            f'SELECT * FROM "{conn.schema}"."{model}"\n'
            "WHERE dt >= date_format(current_date - interval '7' day, '%Y-%m-%d')\n"
            "LIMIT 100;\n\n"
            "-- The latest version of each row\n"
            f'SELECT * FROM "{conn.schema}"."{model}{LATEST_SUFFIX}" LIMIT 100;\n'
        )
        return [{"engine": "Athena SQL", "language": "sql", "code": sql}]
    glob = f"s3://{_prefix(conn, model)}/*/*.parquet"
    duckdb = (
        "INSTALL httpfs; LOAD httpfs;\n"
        f"CREATE SECRET (TYPE s3, PROVIDER credential_chain, REGION '{conn.region}');\n"
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)\n"
        "LIMIT 100;\n"
    )
    pyarrow = (
        "import pyarrow.dataset as ds\n"
        "from pyarrow import fs\n\n"
        "dataset = ds.dataset(\n"
        f'    "{_prefix(conn, model)}", format="parquet", partitioning="hive",\n'
        f'    filesystem=fs.S3FileSystem(region="{conn.region}"),\n'
        ")\n"
        "print(dataset.to_table().num_rows)\n"
    )
    return [
        {"engine": "DuckDB", "language": "sql", "code": duckdb},
        {"engine": "Python (pyarrow)", "language": "python", "code": pyarrow},
    ]
