"""The engine on its own thread and event loop, meeting the bus on the bus's loop.

Why: in ``gridctl run`` the gateway's connections, the API and the engine shared one event
loop. ``bench/dr_latency.py`` at 5,000 chargers (stage counters, engine_stage_seconds)
showed the engine's tick waiting 3.1 s to delete 5,000 outbox rows — a statement PostgreSQL
answers in milliseconds — because the loop was busy delivering the very commands just
published (2.05 s of that thread's CPU during the wait). On its own loop the engine's
awaits on PostgreSQL resume when PostgreSQL answers, not when the gateway yields.

The bus stays where it is: its write-ahead log and Kafka clients belong to the loop that
started them. :class:`LoopBus` runs every bus call on that loop
(``run_coroutine_threadsafe``) and awaits the result from the engine's loop, so neither
side's asyncio objects are touched from the wrong thread; a bus and subscriptions that
say they are ``thread_safe`` (LocalBus and its subscriptions) are called directly. The
engine's guarantees are unchanged (it awaits the same calls in the same order: offsets
committed after the ingest transaction, the outbox deleted after the bus acknowledged).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from pipeline.bus.base import Bus, Message, Record, Subscription
from pipeline.engine.runtime import Engine

T = TypeVar("T")


async def _on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` and await its result from the current loop."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


async def _reach(
    loop: asyncio.AbstractEventLoop, thread_safe: bool, coro: Coroutine[Any, Any, T]
) -> T:
    """Await ``coro`` here when its object is thread-safe, else on its owner's ``loop``."""
    return await (coro if thread_safe else _on(loop, coro))


async def _call(fn: Callable[[], T]) -> T:
    return fn()


class LoopSubscription(Subscription):
    """A subscription of another loop's bus, used from this loop.

    A ``thread_safe`` subscription (LocalBus's) is called directly: at 5,000 chargers
    each hop onto the gateway's loop waited ~0.8 s for a turn (``ingest_bus`` in
    ``bench/dr_latency.py``), two or three hops per tick. Others (Kafka's clients belong
    to their loop) go through the owner's loop.
    """

    def __init__(self, sub: Subscription, loop: asyncio.AbstractEventLoop) -> None:
        self._sub, self._loop = sub, loop
        self.thread_safe = sub.thread_safe

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await _reach(self._loop, self.thread_safe, coro)

    async def batch(self, max_records: int = 500, timeout: float = 0.1) -> list[Record]:
        return await self._run(self._sub.batch(max_records=max_records, timeout=timeout))

    async def commit(self) -> None:
        await self._run(self._sub.commit())

    async def close(self) -> None:
        await self._run(self._sub.close())

    async def lag(self) -> int | None:
        return await self._run(self._sub.lag())

    async def commit_and_lag(self) -> int | None:
        return await self._run(self._sub.commit_and_lag())


class LoopBus(Bus):
    """``bus`` (started on ``loop``) for a component running on another loop's thread."""

    def __init__(self, bus: Bus, loop: asyncio.AbstractEventLoop) -> None:
        self._bus, self._loop = bus, loop
        self.keeps_offsets = bus.keeps_offsets
        self.thread_safe = bus.thread_safe

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await _reach(self._loop, self.thread_safe, coro)

    async def start(self) -> None:  # the owner starts and stops the bus
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, topic: str, key: str | None, value: bytes | None) -> None:
        await self._run(self._bus.publish(topic, key, value))

    async def publish_many(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> None:
        await self._run(self._bus.publish_many(messages, timeout=timeout))

    async def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int] | None:
        return await self._run(self._bus.end_offsets(topics))

    async def ping(self, timeout: float = 2.0) -> str:
        return await self._run(self._bus.ping(timeout))

    def subscribe(
        self, topics: Sequence[str], *, group: str | None = None, from_beginning: bool = True
    ) -> Subscription:
        # Created on the owner's loop: a subscription may bind asyncio objects as it is made.
        future = asyncio.run_coroutine_threadsafe(
            _call(lambda: self._bus.subscribe(topics, group=group, from_beginning=from_beginning)),
            self._loop,
        )
        return LoopSubscription(future.result(), self._loop)


class EngineThread:
    """An :class:`Engine` ticking on a thread of its own; start and stop from the bus's loop.

    ``last_tick_at`` and ``ticks`` read the engine's (plain numbers: safe to read across
    threads), so ``/healthz`` watches it as before.
    """

    def __init__(self, dsn: str, bus: Bus, **options: Any) -> None:
        self._dsn, self._bus, self._options = dsn, bus, options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.engine: Engine | None = None

    @property
    def last_tick_at(self) -> float | None:
        return self.engine.last_tick_at if self.engine is not None else None

    @property
    def ticks(self) -> int:
        return self.engine.ticks if self.engine is not None else 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The engine's own loop (tests check it is not the caller's)."""
        return self._loop

    async def start(self) -> None:
        owner = asyncio.get_running_loop()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gridctl-engine", daemon=True
        )
        self._thread.start()
        self.engine = Engine(self._dsn, LoopBus(self._bus, owner), **self._options)
        try:
            await _on(self._loop, self.engine.start())
        except BaseException:
            await self._end_thread()
            raise

    async def stop(self) -> None:
        if self._loop is None:
            return
        try:
            if self.engine is not None:
                await _on(self._loop, self.engine.stop())
        finally:
            await self._end_thread()

    async def _end_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        loop.close()
