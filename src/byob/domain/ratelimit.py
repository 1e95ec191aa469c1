"""Token buckets: how many more requests (or failures) a key may spend now, and how long until
it may spend one more. Pure: time is passed in, in seconds on any monotonic scale."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """``burst`` at once, refilled at ``per_second``; a rate of 0 admits everything."""

    per_second: float
    burst: float

    @classmethod
    def per_minute(cls, count: float) -> Rate:
        return cls(per_second=count / 60, burst=count)

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0 or self.burst <= 0


class Buckets:
    """One bucket per key, the most recently used ``max_keys`` of them remembered. A bucket
    forgotten is a full one, so forgetting idle keys loses nothing; the bound keeps a flood of
    distinct keys (spoofed addresses, random tokens) from growing memory."""

    def __init__(self, rate: Rate, *, max_keys: int = 65_536) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._tokens: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key: (tokens, at)

    def level(self, key: str, now: float) -> float:
        """The tokens ``key`` holds at ``now``."""
        held = self._tokens.get(key)
        if held is None:
            return self.rate.burst
        tokens, at = held
        return min(self.rate.burst, tokens + max(0.0, now - at) * self.rate.per_second)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` holds one whole token (0 when it does)."""
        if self.rate.unlimited:
            return 0.0
        missing = 1.0 - self.level(key, now)
        return 0.0 if missing <= 0 else missing / self.rate.per_second

    def take(self, key: str, now: float) -> float:
        """Spend one token if ``key`` holds one and return 0; else spend nothing and return the
        seconds until it will."""
        if self.rate.unlimited:
            return 0.0
        wait = self.wait(key, now)
        if wait == 0.0:
            self._set(key, self.level(key, now) - 1.0, now)
        return wait

    def charge(self, key: str, now: float) -> float:
        """Spend one token whatever the level (what already happened, such as a failed sign-in,
        is counted even when it overdraws); return the tokens left, never below 0."""
        if self.rate.unlimited:
            return self.rate.burst
        left = max(0.0, self.level(key, now) - 1.0)
        self._set(key, left, now)
        return left

    def __len__(self) -> int:
        return len(self._tokens)

    def _set(self, key: str, tokens: float, now: float) -> None:
        self._tokens[key] = (tokens, now)
        self._tokens.move_to_end(key)
        while len(self._tokens) > self.max_keys:
            self._tokens.popitem(last=False)
