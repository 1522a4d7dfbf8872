"""Writes per person: a small in-memory token bucket (per process; a restart refills it).
`capacity` writes at once, refilled at `per_minute` a minute."""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_PEOPLE = 50_000  # buckets kept; the fullest are forgotten first when there are more


class TokenBuckets:
    def __init__(
        self,
        per_minute: int,
        capacity: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else per_minute)
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, key: int) -> bool:
        """One write for `key` if its bucket has a token."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_PEOPLE:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again (they would start full anyway); if none
        is, the oldest thousand."""
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.capacity
        ]
        for key in full or list(self._buckets)[:1000]:
            self._buckets.pop(key, None)
