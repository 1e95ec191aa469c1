"""The diff of two permissions policies an update shows the operator."""

from __future__ import annotations

from byob.domain.policies import (
    StatementChange,
    athena_permissions_policy,
    diff_statements,
    s3_permissions_policy,
)


def test_a_new_base_path_changes_the_resource_only() -> None:
    [change] = diff_statements(s3_permissions_policy("b", "old"), s3_permissions_policy("b", "new"))
    assert change == StatementChange(
        sid="ByobWriteUnderBasePath",
        removed={"Resource": ("arn:aws:s3:::b/old/*",)},
        added={"Resource": ("arn:aws:s3:::b/new/*",)},
    )
    assert change.lines() == ["Resource:", "- arn:aws:s3:::b/old/*", "+ arn:aws:s3:::b/new/*"]


def test_the_same_policy_or_a_reordered_one_is_no_change() -> None:
    policy = s3_permissions_policy("b", "p")
    assert diff_statements(policy, s3_permissions_policy("b", "p")) == []
    reordered = s3_permissions_policy("b", "p")
    reordered["Statement"][0]["Action"].reverse()
    assert diff_statements(policy, reordered) == []


def test_a_type_change_removes_and_adds_whole_statements() -> None:
    s3 = s3_permissions_policy("b", "p")
    athena = athena_permissions_policy(account_id="1", workgroup="w", bucket="b", schema="s")
    changes = diff_statements(s3, athena)
    assert [c.sid for c in changes] == [
        "ByobWriteUnderBasePath",
        "AllowAthenaAccess",
        "AllowGlueAccessToDestinationDatabaseAndTables",
        "AllowS3AccessToBucket",
    ]
    gone = changes[0]
    assert gone.added == {} and gone.removed["Effect"] == ("Allow",)
    assert gone.removed["Resource"] == ("arn:aws:s3:::b/p/*",)
    assert changes[3].removed == {} and "s3:GetObject" in changes[3].added["Action"]


def test_statements_without_a_sid_are_matched_by_place_and_a_local_has_none() -> None:
    before = {"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "a"}]}
    after = {"Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "b"}]}
    [change] = diff_statements(before, after)
    assert change.as_dict() == {
        "sid": "statement 1",
        "removed": {"Resource": ["a"]},
        "added": {"Resource": ["b"]},
    }
    assert diff_statements(None, None) == []
    [added] = diff_statements(None, after)
    assert added.removed == {} and added.added["Resource"] == ("b",)
