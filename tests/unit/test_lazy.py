"""`byob.lazy.Lazy`: attributes made on first use, once, and kept on the instance."""

from __future__ import annotations

import threading
import time
from typing import Any

from byob.lazy import Lazy

MADE: list[tuple[Any, ...]] = []


def slow_part(*args: Any) -> tuple[Any, ...]:
    """What the attribute holds: made slowly, so threads asking at once overlap."""
    time.sleep(0.05)
    MADE.append(args)
    return args


class Holder:
    part: Lazy[tuple[Any, ...]] = Lazy(f"{__name__}.slow_part", lambda h: (h.name,))

    def __init__(self, name: str) -> None:
        self.name = name


def test_made_once_on_first_use_even_when_threads_ask_at_once() -> None:
    MADE.clear()
    holder = Holder("a")
    assert MADE == []  # nothing made until asked
    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(holder.part)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert MADE == [("a",)]
    assert all(s is seen[0] for s in seen)
    assert vars(holder)["part"] is seen[0]  # kept on the instance: later reads skip the lock
    assert Holder("b").part == ("b",)  # every instance its own
    assert isinstance(Holder.part, Lazy)
