"""What to do about a failed check, and about a failing connection: one wording for every
door (the wizard links each fix to the step holding what it names; the API, the CLI and the
webhooks carry the same text)."""

from __future__ import annotations

# Check → (where it is fixed: the connection's "role" or its "bucket" settings, what to do).
CHECK_FIXES = {
    "assume_role": (
        "role",
        "Create the role with exactly the role name and trust policy given for this "
        "connection, in the AWS account it names, then validate again.",
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
        "bucket for the base path. Check the connection's bucket name too.",
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


def check_fix(check: str, outcome: str) -> str | None:
    """What to fix for a check that failed; None for one that did not, or has no advice."""
    if outcome != "failed" or check not in CHECK_FIXES:
        return None
    return CHECK_FIXES[check][1]
