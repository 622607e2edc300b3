"""One asyncio lock per key, dropped when nobody holds or waits for it.

Why: revisions of one signal (or one event) must be decided and published one at a time —
two concurrent POSTs of a new signal_id would otherwise both see "nothing stored" — while
different signals proceed in parallel. A plain dict of locks would grow forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyedLock:
    """``async with locks(key): ...`` serialises holders of the same key, FIFO."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def __call__(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(key, None)

    def __len__(self) -> int:
        return len(self._locks)
