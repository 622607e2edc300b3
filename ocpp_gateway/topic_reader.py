"""Reading the gateway's own topics: catch up once at start, then follow for good.

Commands, credentials, zones, sessions and station status are all read the same way:
without a group, from the beginning, each record folded into memory. A bus that cannot
be read for a moment must not end the follower (the state in memory stays valid; the
next good batch brings it up to date), so errors are logged and retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pipeline.bus import Bus, BusError, LocalBus, Record, Subscription

__all__ = ["follow", "read_to_end"]

log = logging.getLogger("ocpp_gateway.topic_reader")


async def read_to_end(
    sub: Subscription, apply: Callable[[Record], object], bus: Bus, first_wait: float
) -> None:
    """Apply every record already on the subscribed topics, then return.

    A broker's first fetch takes a moment, so the first poll waits ``first_wait``; later
    empty polls mean caught up. The in-process bus holds everything in memory already,
    so it needs no waiting at all.
    """
    in_memory = isinstance(bus, LocalBus)
    wait = 0.0 if in_memory else first_wait
    while batch := await sub.batch(1000, timeout=wait):
        wait = 0.0 if in_memory else 0.2
        for record in batch:
            apply(record)


async def follow(
    sub: Subscription, apply: Callable[[Record], object], *, what: str, timeout: float = 1.0
) -> None:
    """Apply each new record as it arrives, until cancelled."""
    while True:
        try:
            batch = await sub.batch(500, timeout=timeout)
        except BusError as exc:
            log.warning("%s unreadable, retrying: %r", what, exc)
            await asyncio.sleep(1.0)
            continue
        for record in batch:
            apply(record)
