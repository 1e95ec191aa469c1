"""IDs as people type them (git-style starts), and which public URLs name this machine."""

from __future__ import annotations

import pytest

from byob.domain import ids
from byob.domain.credentials import names_this_machine
from byob.errors import ConflictError, NotFoundError

A, B, C, D = (start.ljust(32, "0") for start in ("abcd1", "abcd2", "abcd3", "abcd4"))


def starting_with(known: list[str]) -> ids.StartingWith:
    return lambda prefix, limit: [i for i in sorted(known) if i.startswith(prefix)][:limit]


@pytest.mark.parametrize(
    ("ref", "prefix"),
    [("abcd", "abcd"), ("ABCD12", "abcd12"), (A, A), ("abc", None), ("ab%d", None)],
)
def test_a_start_is_4_to_32_hexadecimal_characters(ref: str, prefix: str | None) -> None:
    assert ids.prefix_of(ref) == prefix
    assert ids.prefix_of("a" * 33) is None and ids.prefix_of("ab_d") is None


def test_a_unique_start_names_its_record() -> None:
    assert ids.resolve("transfer", "abcd2", starting_with([A, B])) == B
    assert ids.resolve("transfer", "ABCD1", starting_with([A, B])) == A
    # A whole ID is taken as it is: the caller's lookup says whether it exists.
    assert ids.resolve("transfer", D, starting_with([])) == D


def test_an_ambiguous_start_names_a_few_candidates() -> None:
    with pytest.raises(ConflictError) as two:
        ids.resolve("link", "abcd", starting_with([A, B]))
    assert two.value.message == (
        f"more than one link has an ID starting with 'abcd' ({A}, {B}); give more of its characters"
    )
    with pytest.raises(ConflictError) as many:
        ids.resolve("link", "abcd", starting_with([A, B, C, D]))
    assert many.value.message == (
        f"more than one link has an ID starting with 'abcd' ({A}, {B}, {C} and more); "
        "give more of its characters"
    )


def test_no_match_and_no_possible_start_say_so() -> None:
    with pytest.raises(NotFoundError) as none:
        ids.resolve("transfer", "dead", starting_with([A]))
    assert none.value.message == "no transfer has an ID starting with 'dead'"
    for ref in ("abc", "ab%d", "not-an-id"):
        with pytest.raises(NotFoundError) as refused:
            ids.resolve("transfer", ref, starting_with([A]))
        assert refused.value.message == (
            f"no transfer {ref!r}: give its ID, or at least its first 4 characters"
        )


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:9000/", True),
        ("http://127.0.1.1", True),
        ("http://[::1]:8080", True),
        ("https://byob.example.com", False),
        ("http://10.0.0.5:8080", False),
        ("http://0.0.0.0:8080", False),
    ],
)
def test_which_public_urls_name_this_machine(url: str, local: bool) -> None:
    assert names_this_machine(url) is local
