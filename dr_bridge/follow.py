"""Following an upsert topic from the beginning: the latest record per key, kept current.

The zone directory and the signal states both need "what the topic holds now, then every
change"; this base reads to the end at start (so lookups are right at once) and follows in
the background. Subclasses say what a record means in ``_apply_records``.
"""

from __future__ import annotations

import asyncio
import contextlib

from pipeline.bus import Bus, BusClosed, LocalBus, Record, Subscription


class TopicFollower:
    """Read ``topic`` to its end on :meth:`start`, then follow it until :meth:`stop`."""

    topic: str
    name: str = "topic-follower"

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe and read what the topic holds now, so lookups are right at once."""
        self._sub = self._bus.subscribe([self.topic], group=None, from_beginning=True)
        # The in-process bus answers at once; a Kafka consumer needs a moment to be
        # assigned its partitions, so wait longer for its first batch. Then read until
        # the topic has nothing more right now.
        local = isinstance(self._bus, LocalBus)
        timeout = 0.0 if local else 2.0
        while True:
            records = await self._sub.batch(max_records=5000, timeout=timeout)
            if not records:
                break
            self._apply_records(records)
            timeout = 0.0 if local else 0.2
        self._task = asyncio.create_task(self._follow(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            await self._sub.close()

    async def _follow(self) -> None:
        assert self._sub is not None
        with contextlib.suppress(BusClosed):
            while True:
                self._apply_records(await self._sub.batch(max_records=5000, timeout=1.0))

    def _apply_records(self, records: list[Record]) -> None:
        raise NotImplementedError
