"""Connections: creation rules, auth, and the draft → active → paused lifecycle."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from byob.domain import connections as c
from byob.domain import fields
from byob.domain.connections import AuthKind, ConnectionType, Status
from byob.errors import ConflictError, InvalidFieldError

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
ACCOUNT = "123456789012"
SERVICE = "arn:aws:iam::111122223333:role/byob-service"


def make(**overrides: Any) -> c.Connection:
    args: dict[str, Any] = {
        "id": "ABCDEF0123456789",
        "name": "acme-s3",
        "tenant": "acme",
        "type": "s3",
        "now": NOW,
        "account_id": ACCOUNT,
        "bucket": "acme-data",
        "region": "eu-west-1",
        "base_path": "exports/billing/",
    }
    args.update(overrides)
    return c.new_connection(**args)


def athena(**overrides: Any) -> c.Connection:
    args: dict[str, Any] = {
        "type": "athena",
        "name": "acme-athena",
        "base_path": None,
        "schema": "acme_billing",
        "database": "acme_queries",
    }
    args.update(overrides)
    return make(**args)


def active(conn: c.Connection | None = None) -> c.Connection:
    conn = conn or make()
    return c.activate(conn, validated_fingerprint=conn.destination_fingerprint(), now=NOW)


def refused(field: str, **overrides: Any) -> InvalidFieldError:
    with pytest.raises(InvalidFieldError) as info:
        make(**overrides)
    assert info.value.field == field, info.value.message
    return info.value


# --- creation -------------------------------------------------------------------------------


def test_new_s3_connection_is_a_draft_with_generated_role() -> None:
    conn = make()
    assert conn.type is ConnectionType.S3
    assert conn.status is Status.DRAFT
    assert conn.auth is AuthKind.ROLE
    assert conn.base_path == "exports/billing"
    assert conn.role_name == "byob-acme-s3-abcdef"
    assert conn.role_arn == f"arn:aws:iam::{ACCOUNT}:role/byob-acme-s3-abcdef"
    assert re.fullmatch(r"[A-Za-z0-9]{40}", conn.external_id)
    assert conn.first_activated_at is None
    assert conn.created_at == conn.updated_at == NOW
    assert conn.data_prefix == "exports/billing"
    assert conn.location() == "s3://acme-data/exports/billing"


def test_each_connection_gets_its_own_external_id() -> None:
    ids = {make(id=f"ID{n:04d}xx").external_id for n in range(50)}
    assert len(ids) == 50


def test_s3_without_base_path() -> None:
    conn = make(base_path=None)
    assert conn.base_path == ""
    assert conn.location() == "s3://acme-data"
    assert c.permissions_policy(conn)["Statement"][0]["Resource"] == "arn:aws:s3:::acme-data/*"


def test_s3_permissions_and_trust_policy_for_connection() -> None:
    conn = make()
    assert c.permissions_policy(conn)["Statement"][0]["Resource"] == (
        "arn:aws:s3:::acme-data/exports/billing/*"
    )
    trust = c.trust_policy(conn, SERVICE)["Statement"][0]
    assert trust["Principal"] == {"AWS": SERVICE}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": conn.external_id}}


def test_existing_role_arn_is_used_instead_of_the_generated_one() -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/service-role/transfer-role"
    conn = make(role_arn=arn)
    assert conn.auth is AuthKind.ROLE
    assert conn.role_arn == arn
    assert conn.role_name == "transfer-role"
    assert conn.external_id  # still required by the trust policy


def test_role_arn_from_another_account_is_refused() -> None:
    err = refused("role_arn", role_arn="arn:aws:iam::999999999999:role/transfer-role")
    assert "999999999999" in err.message and ACCOUNT in err.message


def test_hmac_connection_needs_the_secret() -> None:
    err = refused("secret_access_key", access_key_id="AKIAIOSFODNN7EXAMPLE")
    assert "secret" in err.message


def test_hmac_connection_with_fingerprint() -> None:
    conn = make(access_key_id="AKIAIOSFODNN7EXAMPLE", secret_fingerprint="f" * 16)
    assert conn.auth is AuthKind.HMAC
    assert conn.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert conn.secret_fingerprint == "f" * 16
    assert conn.role_arn == "" and conn.role_name == ""


def test_role_arn_and_access_key_together_are_refused() -> None:
    refused(
        "role_arn",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_fingerprint="f" * 16,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/x",
    )


def test_bad_access_key_id_is_refused() -> None:
    refused("access_key_id", access_key_id="not-a-key", secret_fingerprint="f" * 16)


@pytest.mark.parametrize("kind", ["S3", "gcs", "redshift"])
def test_unknown_type_is_refused(kind: str) -> None:
    err = refused("type", type=kind)
    assert repr(kind) in err.message


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("account_id", {"account_id": "12345"}),
        ("bucket", {"bucket": "Bad_Bucket"}),
        ("region", {"region": "us-gov-west-1"}),
        ("base_path", {"base_path": "/abs"}),
        ("name", {"name": "bad name"}),
        ("tenant", {"tenant": ""}),
    ],
)
def test_invalid_fields_are_refused_by_name(field: str, overrides: dict[str, Any]) -> None:
    refused(field, **overrides)


def test_the_frequency_is_chosen_at_creation() -> None:
    assert make().frequency_minutes == 1440  # daily unless chosen
    assert make(frequency_minutes=60).frequency_minutes == 60
    assert make(frequency_minutes="15").frequency_minutes == 15  # a form's value
    assert refused("frequency_minutes", frequency_minutes=30).message.startswith(
        "frequency must be one of these minutes: 15 (every 15 minutes), 60 (hourly)"
    )


def test_new_athena_connection() -> None:
    conn = athena()
    assert conn.type is ConnectionType.ATHENA
    assert conn.workgroup == "primary"
    assert (conn.schema, conn.database) == ("acme_billing", "acme_queries")
    assert conn.data_prefix == "acme_billing"
    assert conn.location() == "s3://acme-data/acme_billing"
    policy = c.permissions_policy(conn)
    assert [s["Sid"] for s in policy["Statement"]] == [
        "AllowAthenaAccess",
        "AllowGlueAccessToDestinationDatabaseAndTables",
        "AllowS3AccessToBucket",
    ]
    assert f"arn:aws:glue:*:{ACCOUNT}:database/acme_billing" in policy["Statement"][1]["Resource"]


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("schema", {"schema": ""}),
        ("schema", {"schema": "Acme"}),
        ("schema", {"schema": "acme-billing"}),
        ("database", {"database": ""}),
        ("database", {"database": "acme_billing"}),  # same as schema
        ("workgroup", {"workgroup": ""}),
        ("workgroup", {"workgroup": "has space"}),
    ],
)
def test_athena_fields_are_checked(field: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidFieldError) as info:
        athena(**overrides)
    assert info.value.field == field


def test_new_local_connection(tmp_path) -> None:
    conn = c.new_connection(
        id="L1",
        name="local-1",
        tenant="acme",
        type="local",
        now=NOW,
        path=str(tmp_path),
        base_path="out/",
    )
    assert conn.type is ConnectionType.LOCAL
    assert conn.auth is AuthKind.NONE
    assert conn.base_path == "out"
    assert conn.external_id == "" and conn.role_arn == ""
    assert conn.location() == f"{tmp_path}/out"


def test_local_connection_needs_a_path() -> None:
    with pytest.raises(InvalidFieldError) as info:
        c.new_connection(id="L1", name="local-1", tenant="acme", type="local", now=NOW)
    assert info.value.field == "path"
    assert info.value.message.startswith("path is required: the directory")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("region", "region is required: the AWS region of the bucket, e.g. eu-west-1"),
        (
            "account_id",
            "account_id is required: the 12-digit ID of the AWS account that owns the bucket, "
            "e.g. 123456789012",
        ),
        (
            "bucket",
            "bucket is required: the name of an existing S3 bucket in that account, e.g. acme-data",
        ),
        (
            "name",
            "name is required: a name for this connection, e.g. acme-s3 (letters, digits, "
            "'_', '.' or '-')",
        ),
        (
            "tenant",
            "tenant is required: the tenant's value in the source's tenant column, e.g. acme",
        ),
        ("type", "type is required: the kind of destination: s3, athena or local"),
    ],
)
def test_an_empty_required_field_is_refused_as_required(field: str, message: str) -> None:
    for empty in ("", "  "):
        assert refused(field, **{field: empty}).message == message


@pytest.mark.parametrize("field", ["schema", "database", "workgroup"])
def test_an_empty_athena_field_is_refused_as_required(field: str) -> None:
    with pytest.raises(InvalidFieldError) as info:
        athena(**{field: ""})
    assert (info.value.field, info.value.message) == (
        field,
        f"{field} is required: {fields.WHAT_TO_PUT[field]}",
    )


def test_an_update_that_empties_a_required_field_says_it_is_required() -> None:
    for field in ("region", "bucket", "account_id", "name"):
        with pytest.raises(InvalidFieldError) as info:
            c.revise(make(), {field: ""}, now=LATER)
        assert info.value.field == field
        assert info.value.message.startswith(f"{field} is required: ")


# --- lifecycle ------------------------------------------------------------------------------


def test_activate_without_validation_is_refused() -> None:
    conn = make()
    with pytest.raises(ConflictError, match="validat"):
        c.activate(conn, validated_fingerprint=None, now=NOW)


def test_lifecycle_refusals_name_no_command_for_they_reach_every_door() -> None:
    """The recipient's pages and the API show these too: what to do, not a CLI command."""
    draft = make()
    said = []
    with pytest.raises(ConflictError) as info:
        c.activate(draft, validated_fingerprint=None, now=NOW)
    said.append(info.value.message)
    with pytest.raises(ConflictError) as info:
        c.resume(draft, validated_fingerprint=None, now=NOW)
    said.append(info.value.message)
    active = c.activate(draft, validated_fingerprint=draft.destination_fingerprint(), now=NOW)
    paused = c.pause(active, now=LATER)
    failing = dataclasses.replace(active, failing_check="write_access", failing_message="denied")
    disabled = c.disable(active, now=LATER)
    said += [x.transfer_refusal() or "" for x in (draft, paused, failing, disabled)]
    assert all(said) and not [m for m in said if "byob " in m or "`" in m], said
    assert "validate it, then activate it" in said[2] and "resume it" in said[3]
    assert "a passing validation resumes its transfers" in said[4]


def test_activate_with_a_stale_validation_is_refused() -> None:
    old = make()
    stale = old.destination_fingerprint()
    moved = c.revise(old, {"bucket": "other-bucket"}, now=LATER)
    assert moved.destination_fingerprint() != stale
    with pytest.raises(ConflictError):
        c.activate(moved, validated_fingerprint=stale, now=LATER)


def test_activate_with_current_validation() -> None:
    conn = make()
    got = c.activate(conn, validated_fingerprint=conn.destination_fingerprint(), now=LATER)
    assert got.status is Status.ACTIVE
    assert got.first_activated_at == LATER
    assert got.updated_at == LATER


def test_first_activated_at_is_set_only_once() -> None:
    first = active()
    assert first.first_activated_at == NOW
    paused = c.pause(first, now=LATER)
    again = c.activate(
        paused, validated_fingerprint=paused.destination_fingerprint(), now=LATER + timedelta(1)
    )
    assert again.status is Status.ACTIVE
    assert again.first_activated_at == NOW


def test_disabled_connection_cannot_be_activated() -> None:
    conn = dataclasses.replace(make(), status=Status.DISABLED)
    with pytest.raises(ConflictError, match="disabled"):
        c.activate(conn, validated_fingerprint=conn.destination_fingerprint(), now=NOW)


def test_fingerprint_ignores_non_destination_fields() -> None:
    conn = make()
    same = dataclasses.replace(conn, frequency_minutes=60, name="renamed", updated_at=LATER)
    assert same.destination_fingerprint() == conn.destination_fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"bucket": "other-bucket"},
        {"region": "us-east-1"},
        {"base_path": "elsewhere"},
        {"base_path": ""},
        {"account_id": "210987654321"},
        {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/other"},
        {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_fingerprint": "rotated"},
        {"type": "athena", "schema": "billing", "database": "results"},
    ],
)
def test_update_of_destination_returns_active_connection_to_draft(changes: dict[str, Any]) -> None:
    conn = active()
    got = c.revise(conn, changes, now=LATER)
    assert got.status is Status.DRAFT
    assert got.updated_at == LATER
    for key, value in changes.items():
        assert str(getattr(got, key)) == str(value)
    # the old validation no longer counts
    with pytest.raises(ConflictError):
        c.activate(got, validated_fingerprint=conn.destination_fingerprint(), now=LATER)


@pytest.mark.parametrize("changes", [{"frequency_minutes": 60}, {"name": "renamed"}])
def test_update_of_schedule_or_name_keeps_it_active(changes: dict[str, Any]) -> None:
    conn = active()
    got = c.revise(conn, changes, now=LATER)
    assert got.status is Status.ACTIVE
    assert got.updated_at == LATER
    for key, value in changes.items():
        assert getattr(got, key) == value


def test_update_with_same_values_keeps_it_active() -> None:
    conn = active()
    assert c.revise(conn, {"bucket": conn.bucket}, now=LATER).status is Status.ACTIVE


def test_pause_only_from_active() -> None:
    paused = c.pause(active(), now=LATER)
    assert paused.status is Status.PAUSED
    assert paused.updated_at == LATER
    for status in (Status.DRAFT, Status.PAUSED, Status.DISABLED):
        conn = dataclasses.replace(make(), status=status)
        with pytest.raises(ConflictError, match=str(status)):
            c.pause(conn, now=LATER)


def test_activating_an_active_connection_is_a_no_op() -> None:
    conn = active()
    assert c.activate(conn, validated_fingerprint=None, now=LATER) == conn


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"external_id": "mine"}, "external_id"),
        ({"status": "active"}, "status"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"region": "mars-1"}, "region"),
        ({"base_path": "/abs"}, "base_path"),
        ({"role_arn": "arn:aws:iam::999999999999:role/x"}, "role_arn"),
        ({"access_key_id": "AKIAIOSFODNN7EXAMPLE"}, "secret_access_key"),
        ({"frequency_minutes": 7}, "frequency_minutes"),
        ({"type": "local"}, "type"),
    ],
)
def test_revise_refuses_bad_or_forbidden_changes(changes: dict[str, Any], field: str) -> None:
    conn = active()
    with pytest.raises(InvalidFieldError) as err:
        c.revise(conn, changes, now=LATER)
    assert err.value.field == field


def test_revise_back_to_the_generated_role_after_hmac() -> None:
    conn = active()
    hmac = c.revise(
        conn, {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_fingerprint": "f"}, now=LATER
    )
    assert hmac.auth is AuthKind.HMAC and hmac.role_arn == ""
    back = c.revise(hmac, {"auth": "role"}, now=LATER)
    assert back.auth is AuthKind.ROLE and back.access_key_id == ""
    assert back.role_arn.endswith("/" + back.role_name) and back.role_name.startswith("byob-")
    assert back.external_id == conn.external_id


def test_describe_changes_never_shows_a_secret() -> None:
    conn = active()
    after = c.revise(
        conn, {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_fingerprint": "s3cr3tfp"}, now=LATER
    )
    changes = c.describe_changes(conn, after)
    assert changes["secret_access_key"] == ["", "(changed)"]
    assert "s3cr3tfp" not in repr(changes)
    assert changes["status"] == ["active", "draft"]
