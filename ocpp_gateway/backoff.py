"""Back-off after failed logins, per key (a source address, a station id); no I/O.

Each key may fail ``free`` times within ``window_s``; after that it waits
``base_s * 2 ** (failures - free)`` seconds (at most ``max_s``) before its next attempt is
even looked at. Attempts during the wait are answered 429 without verifying anything, so
they teach a guesser nothing and cost no hash; they do not count as failures either, so a
charger retrying quickly is not punished further for waiting badly. A success clears the
key. At most ``max_keys`` keys are tracked (the oldest are forgotten first), so a spray of
random station ids cannot grow memory without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(slots=True)
class _Entry:
    failures: int
    last: float
    until: float


class Backoff:
    """Failure counts and waits of many keys."""

    def __init__(
        self,
        *,
        free: int,
        base_s: float = 1.0,
        max_s: float = 300.0,
        window_s: float = 900.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def wait(self, key: str) -> float:
        """Seconds ``key`` must still wait (0: it may try now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        now = self.clock()
        if now - entry.last > self.window_s:
            del self._entries[key]
            return 0.0
        return max(0.0, entry.until - now)

    def fail(self, key: str) -> None:
        """Count one failure of ``key`` (call only when :meth:`wait` was 0)."""
        now = self.clock()
        entry = self._entries.pop(key, None)
        if entry is None or now - entry.last > self.window_s:
            entry = _Entry(0, now, now)
        entry.failures += 1
        entry.last = now
        over = entry.failures - self.free
        if over > 0:
            entry.until = now + min(self.max_s, self.base_s * 2.0 ** min(over - 1, 30))
        self._entries[key] = entry  # re-inserted: dict order is least recently failed first
        while len(self._entries) > self.max_keys:
            del self._entries[next(iter(self._entries))]

    def succeed(self, key: str) -> None:
        self._entries.pop(key, None)
