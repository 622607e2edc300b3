"""A bus seen through a topic prefix: components say ``ocpp.meter_values``, the broker
holds ``siteA.ocpp.meter_values``.

The migrations take ``${topic_prefix}`` so that several deployments can share one Kafka
cluster. The gateway, the bridge and the CLI name topics by the contracts in
:mod:`pipeline.topics`; handing them a :class:`PrefixedBus` makes every one of them honour
the prefix without knowing it, and a component cannot forget it. The engine reads its topics
from the compiled catalog, which already carries the prefix, so it gets the inner bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, Message, Record, Subscription


class _PrefixedSubscription(Subscription):
    def __init__(self, inner: Subscription, prefix: str) -> None:
        self._inner = inner
        self._prefix = prefix

    async def batch(self, max_records: int = 500, timeout: float = 0.1) -> list[Record]:
        records = await self._inner.batch(max_records=max_records, timeout=timeout)
        n = len(self._prefix)
        return [replace(r, topic=r.topic[n:]) for r in records]

    async def commit(self) -> None:
        await self._inner.commit()

    async def close(self) -> None:
        await self._inner.close()

    async def lag(self) -> int | None:
        return await self._inner.lag()


class PrefixedBus(Bus):
    """``inner`` with ``prefix`` put before every topic name going in and taken off every
    record coming out. Starting and stopping it starts and stops ``inner``."""

    def __init__(self, inner: Bus, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.keeps_offsets = inner.keeps_offsets

    def topic(self, name: str) -> str:
        """The physical name of a contract topic."""
        return self.prefix + name

    async def start(self) -> None:
        await self.inner.start()
        create = getattr(self.inner, "create_topics", None)
        if create is not None and self.prefix:
            # Kafka: the prefixed topics, upsert ones compacted (is_upsert sees the suffix).
            names = [self.topic(t) for t in topic_names.ALL_TOPICS]
            await asyncio.get_running_loop().run_in_executor(None, create, names)

    async def stop(self) -> None:
        await self.inner.stop()

    async def publish(self, topic: str, key: str | None, value: bytes | None) -> None:
        await self.inner.publish(self.topic(topic), key, value)

    async def publish_many(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> None:
        await self.inner.publish_many(
            [Message(self.topic(m.topic), m.key, m.value) for m in messages], timeout=timeout
        )

    async def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int] | None:
        ends = await self.inner.end_offsets([self.topic(t) for t in topics])
        if ends is None:
            return None
        n = len(self.prefix)
        return {(t[n:], p): o for (t, p), o in ends.items()}

    async def ping(self, timeout: float = 2.0) -> str:
        return await self.inner.ping(timeout)

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        from_beginning: bool = True,
    ) -> Subscription:
        inner = self.inner.subscribe(
            [self.topic(t) for t in topics], group=group, from_beginning=from_beginning
        )
        return _PrefixedSubscription(inner, self.prefix)


def with_prefix(bus: Bus, prefix: str) -> Bus:
    """``bus`` itself when there is no prefix, else a :class:`PrefixedBus` over it."""
    return PrefixedBus(bus, prefix) if prefix else bus
