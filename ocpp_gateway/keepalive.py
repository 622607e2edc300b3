"""Keepalive pings for every connection from one task, instead of one task per connection.

websockets' own keepalive (``ping_interval`` given to ``serve``) runs a task per
connection that sleeps ``ping_interval``, pings, and waits up to ``ping_timeout`` for the
pong: a task, its coroutine, a sleep future and a timer handle alive for the whole life of
every connection (~0.8 KB each, ~8 MiB at 10,000 chargers; bench/gateway_memory.py). Here
one task keeps the next ping time of each connection in a heap and wakes once per
``tick``; a connection that is due gets a short-lived task that sends the ping and waits
for the pong, so a task exists only while a ping is in flight (milliseconds for a live
charger, ``timeout`` for a dead one). The rules are websockets' own:

- a ping every ``interval`` s from the previous ping (the next one is sent ``interval``
  after the previous was sent, once its pong came back);
- no pong within ``timeout`` s of the ping: the connection is failed with 1011
  "keepalive ping timeout", as websockets does it (close frame, then the TCP connection
  is closed without waiting for the peer's close);
- ``timeout`` None: pings are sent and their pongs not awaited.

The heap's entries are checked against ``_due`` when they come up, so removing a
connection (:meth:`discard`) is O(1) and a closed connection is not referenced past its
next due time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

__all__ = ["Keepalive"]

log = logging.getLogger("ocpp_gateway.keepalive")


class Keepalive:
    """Pings every added connection each ``interval`` s; fails those whose pong is late.

    Call :meth:`start` on the running loop, :meth:`add` when a connection opens and
    :meth:`discard` when its handler ends, :meth:`stop` at shutdown.
    """

    def __init__(self, interval: float, timeout: float | None, *, tick: float = 1.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.timeout = timeout
        #: how often the heap is looked at: a ping goes out at most ``tick`` s late
        self.tick = min(tick, interval / 4)
        self._due: dict[Connection, float] = {}  # connection -> its next ping, monotonic
        self._heap: list[tuple[float, int, Connection]] = []
        self._seq = itertools.count()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._due)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keepalive")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._due.clear()
        self._heap.clear()

    def add(self, connection: Connection) -> None:
        """Ping ``connection`` from ``interval`` s from now on."""
        self._schedule(connection, time.monotonic() + self.interval)

    def discard(self, connection: Connection) -> None:
        """Stop pinging ``connection`` (its handler ended)."""
        self._due.pop(connection, None)

    def _schedule(self, connection: Connection, due: float) -> None:
        self._due[connection] = due
        heapq.heappush(self._heap, (due, next(self._seq), connection))

    async def _run(self) -> None:
        heap = self._heap
        while True:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                due, _, connection = heapq.heappop(heap)
                if self._due.get(connection) != due:
                    continue  # discarded, or rescheduled since this entry was pushed
                # not due again until its pong is back (or it is failed)
                self._due[connection] = float("inf")
                task = asyncio.ensure_future(self._ping(connection))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _ping(self, connection: Connection) -> None:
        """One ping and its pong, as websockets' ``Connection.keepalive`` does it."""
        sent = time.monotonic()
        try:
            pong = await connection.ping()
            if self.timeout is not None:
                try:
                    async with asyncio.timeout(self.timeout):
                        await pong
                except TimeoutError:
                    # websockets' own words and code, so logs and close reasons read the
                    # same as with its keepalive
                    async with connection.send_context():
                        connection.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    return
        except ConnectionClosed:
            return
        except Exception:
            log.error("keepalive ping failed", exc_info=True)
            return
        if connection in self._due:  # still served: the next ping `interval` after this one
            self._schedule(connection, sent + self.interval)
