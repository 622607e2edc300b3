"""The bus interface every component talks to.

Like httpx's transports, the bus is injected: the gateway, the bridge and the engine
depend on :class:`Bus` only, and run unchanged on :class:`~pipeline.bus.LocalBus` (one
process) or :class:`~pipeline.bus.KafkaBus` (a cluster). Both keep the same promises:

- ``publish`` resolves only once the record is durable (broker-acknowledged with
  ``acks=all`` on Kafka; appended to the log in-process) and raises :class:`PublishError`
  otherwise, within ``publish_timeout`` seconds; it never hangs.
- at most ``max_in_flight`` publishes wait at once; further callers wait their turn
  (back-pressure), counted in the same timeout.
- a ``None`` value is a tombstone and is delivered as such.
- a subscription reading an upsert topic from the beginning sees the latest value of
  each key (and tombstones for deleted keys, until compaction removes them).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass


class BusError(Exception):
    """Root of the bus errors."""


class PublishError(BusError):
    """A record could not be made durable; the caller must not acknowledge its source."""


class BusClosed(BusError):
    """The bus or subscription was stopped."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read from a topic. ``value is None`` is a tombstone."""

    topic: str
    key: str | None
    value: bytes | None
    offset: int
    timestamp_ms: int
    partition: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """One record to publish."""

    topic: str
    key: str | None
    value: bytes | None


class Subscription(abc.ABC):
    """A consumer of one or more topics.

    Read with ``async for record in sub`` or ``await sub.batch()``. Offsets of records
    returned so far are committed for the group by ``await sub.commit()``; commit after the
    records are safely processed so that a crash replays them (at-least-once).

    ``thread_safe`` subscriptions may be used from an event loop on another thread than
    the one their bus runs on (the engine's own thread reads LocalBus this way, without
    waiting for a turn of the gateway's busy loop); others are reached through that loop
    (:class:`pipeline.engine.thread.LoopSubscription`).
    """

    thread_safe: bool = False

    @abc.abstractmethod
    async def batch(self, max_records: int = 500, timeout: float = 0.1) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` s for the first."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Commit the offsets of every record returned so far."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the group and release resources."""

    async def lag(self) -> int | None:
        """Records on the subscribed topics not yet returned, or None when unknown.

        What a NOC watches as "engine lag behind the bus"; cheap enough to call per tick.
        """
        return None

    async def commit_and_lag(self) -> int | None:
        """:meth:`commit`, then :meth:`lag`: one call where each call costs a hop
        (:class:`pipeline.engine.thread.LoopSubscription`)."""
        await self.commit()
        return await self.lag()

    async def __aiter__(self) -> AsyncIterator[Record]:
        while True:
            for record in await self.batch(timeout=0.5):
                yield record

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Bus(abc.ABC):
    """Publish and subscribe, with durability promised by ``publish``."""

    #: Whether offsets survive a restart of this process (a broker, or an on-disk log).
    #: A consumer that stores offsets itself must forget them when they do not.
    keeps_offsets: bool = True
    #: Whether ``publish``, ``publish_many``, ``end_offsets`` and ``ping`` may be awaited
    #: from an event loop on another thread than the one that started the bus (LocalBus:
    #: the engine's thread publishes without waiting for a turn of the gateway's loop).
    thread_safe: bool = False

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect; create missing topics (upsert topics compacted)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Flush what can be flushed within the timeout and disconnect."""

    @abc.abstractmethod
    async def publish(self, topic: str, key: str | None, value: bytes | None) -> None:
        """Make one record durable, or raise :class:`PublishError` within the timeout."""

    async def publish_many(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> None:
        """Make several records durable; raises if any of them failed.

        Records with the same key keep their order. Implementations overlap the writes.
        ``timeout``: give up (:class:`PublishError`) sooner than ``publish_timeout`` -- a
        caller with a deadline of its own (the gateway's ``ack_timeout``) passes it here
        instead of arming a timer of its own around the call.
        """
        import asyncio

        async def gather() -> None:
            results = await asyncio.gather(
                *(self.publish(m.topic, m.key, m.value) for m in messages),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result

        if timeout is None:
            await gather()
            return
        try:
            async with asyncio.timeout(timeout):
                await gather()
        except TimeoutError:
            raise PublishError(f"not durable within {timeout:g} s") from None

    async def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int] | None:
        """The next offset of each ``(topic, partition)``, or None when unknown.

        A consumer that stores offsets itself (the engine) compares them with these on
        start: an offset beyond the end means the log lost its tail, and reading on from
        there would skip every new record.
        """
        return None

    async def ping(self, timeout: float = 2.0) -> str:
        """A one-line detail when the bus can take records now; raises :class:`BusError`
        when it cannot (``/healthz`` calls this). The default knows nothing better."""
        return "up"

    @abc.abstractmethod
    def subscribe(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        from_beginning: bool = True,
    ) -> Subscription:
        """A subscription to ``topics``.

        ``group`` shares committed offsets between runs (a restarted consumer continues
        where its group committed); ``None`` reads without a group. ``from_beginning``
        chooses where a consumer without committed offsets starts.
        """

    async def __aenter__(self) -> Bus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
