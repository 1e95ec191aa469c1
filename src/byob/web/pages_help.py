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


# Check → (the wizard step to fix it on, what to do there).
CHECK_FIXES = {
    "assume_role": (
        "role",
        "Create the role with exactly the role name and trust policy of the "
        "IAM role step, in the AWS account you entered, then revalidate.",
    ),
    "external_id_required": (
        "role",
        "Replace the role's trust policy with the one shown: it "
        "must require this connection's external ID.",
    ),
    "credentials": ("bucket", "Check the access key ID and enter the secret access key again."),
    "bucket_region": (
        "bucket",
        "Check the bucket name and region; create the bucket if it does not exist yet.",
    ),
    "write_test_object": ("role", "Attach the permissions policy shown, unchanged, to the role."),
    "delete_test_object": (
        "role",
        "The permissions policy must allow s3:DeleteObject until the connection is active.",
    ),
    "workgroup": ("bucket", "Check the workgroup name, or that the policy allows it."),
    "glue_database": ("role", "Attach the permissions policy shown: it allows the Glue calls."),
    "athena_query": ("role", "Attach the permissions policy shown: it allows the Athena calls."),
    "athena_output_location": (
        "bucket",
        "Let the workgroup use the query results location "
        "shown, or turn off its output location override.",
    ),
    "list_base_path": (
        "role",
        "Attach the permissions policy shown, unchanged: it allows s3:ListBucket on the "
        "bucket for the base path. Check the bucket name on the S3 bucket step.",
    ),
    "read_object": (
        "role",
        "Attach the permissions policy shown, unchanged: it allows s3:GetObject under the "
        "base path. If the bucket is encrypted with a KMS key, also allow kms:Decrypt on it.",
    ),
    "write_refused": (
        "role",
        "Attach exactly the permissions policy shown (s3:ListBucket and s3:GetObject), "
        "nothing broader.",
    ),
}


TRANSFER_FIX = (
    "Check, in your AWS account, that the bucket and the IAM role still exist and that the "
    "permissions policy is attached to the role unchanged. Then tell your vendor: once the "
    "connection validates again, transfers resume and catch up on what was missed."
)


def recipient_fix(check: str | None) -> str:
    """What the recipient does about a failing connection (the failing check's fix)."""
    if check is None:
        return ""
    if check in CHECK_FIXES:
        return CHECK_FIXES[check][1] + " Then tell your vendor, who revalidates the connection."
    return TRANSFER_FIX


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
