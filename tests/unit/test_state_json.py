"""JSON values read back from the PostgreSQL state store (store.db._json_loads): what the
standard library would have made of them, however they are spelled."""

from __future__ import annotations

import json

import pytest

from byob.store.db import _json_loads


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "[]",
        '[{"name": "path_exists", "outcome": "passed", "duration_ms": 12, "aws_code": null}]',
        '{"a": 1, "a": 2}',
        "123456789012345678901234567890",
        "-0.0",
        "1e400",
        "0.1000000000000000055511151231257827",
        '"\\u00e9t\\u00e9"',
        '"\\ud800 a lone surrogate"',  # refused by pydantic-core: read by json.loads
        "NaN",
    ],
)
def test_as_json_loads_reads_them(text: str) -> None:
    for data in (text.encode(), text):
        got, expected = _json_loads(data), json.loads(text)
        assert repr(got) == repr(expected) and type(got) is type(expected)


def test_invalid_json_is_refused_as_json_loads_refuses_it() -> None:
    with pytest.raises(ValueError):
        _json_loads(b"{not json")
