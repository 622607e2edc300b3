"""Following a topic from the beginning: catch up once at start, then follow for good.

The gateway's commands, credentials, zones, sessions and station status, and the DR
bridge's zone directory and signal states, are all read the same way: without a group,
from the beginning, each batch folded into memory. A bus that cannot be read for a
moment must not end the follower (the state in memory stays valid; the next good batch
brings it up to date), so read errors are logged and retried; a closed bus ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from pipeline.bus.base import Bus, BusClosed, BusError, Record, Subscription
from pipeline.bus.local import LocalBus

__all__ = ["TopicFollower", "follow", "read_to_end"]

log = logging.getLogger("pipeline.bus.follow")

Apply = Callable[[list[Record]], object]


async def read_to_end(
    sub: Subscription, apply: Apply, bus: Bus, first_wait: float, *, max_records: int = 1000
) -> None:
    """Apply every record already on the subscribed topics, then return.

    A broker's first fetch takes a moment, so the first poll waits ``first_wait``; later
    empty polls mean caught up. The in-process bus holds everything in memory already,
    so it needs no waiting at all.
    """
    in_memory = isinstance(bus, LocalBus)
    wait = 0.0 if in_memory else first_wait
    while batch := await sub.batch(max_records, timeout=wait):
        wait = 0.0 if in_memory else 0.2
        apply(batch)


async def follow(
    sub: Subscription,
    apply: Apply,
    *,
    what: str,
    timeout: float = 1.0,
    max_records: int = 500,
) -> None:
    """Apply each new batch as it arrives, until cancelled or the bus is closed."""
    while True:
        try:
            batch = await sub.batch(max_records, timeout=timeout)
        except BusClosed:
            return
        except BusError as exc:
            log.warning("%s unreadable, retrying: %r", what, exc)
            await asyncio.sleep(1.0)
            continue
        if batch:
            apply(batch)


class TopicFollower:
    """Read ``topic`` to its end on :meth:`start`, then follow it until :meth:`stop`.

    Subclasses say what a batch of records means in ``_apply_records``.
    """

    topic: str
    name: str = "topic-follower"
    #: how long a broker may take to give the first batch (the in-process bus: none)
    first_wait: float = 2.0

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe and read what the topic holds now, so lookups are right at once."""
        self._sub = self._bus.subscribe([self.topic], group=None, from_beginning=True)
        await read_to_end(
            self._sub, self._apply_records, self._bus, self.first_wait, max_records=5000
        )
        self._task = asyncio.create_task(
            follow(self._sub, self._apply_records, what=self.topic, max_records=5000),
            name=self.name,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            await self._sub.close()

    def _apply_records(self, records: list[Record]) -> None:
        raise NotImplementedError
