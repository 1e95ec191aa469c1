"""The fault suite's servers: real `byob serve` processes on 127.0.0.1, on their own state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Served, serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("faults")) as server:
        yield server
