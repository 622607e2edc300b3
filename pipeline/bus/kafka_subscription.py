"""A Kafka subscription: one confluent-kafka ``Consumer`` behind the ``Subscription`` API.

Blocking librdkafka calls run on the subscription's own single worker thread (never the
loop's default executor, which the WAL and other I/O share). ``group=None`` assigns every
partition directly, with no group join, so it reads at once; a named group uses
``subscribe`` and commits explicitly in ``commit()``. Start positions for partitions
without a committed offset are worked out when ``subscribe()`` is called, so a
``from_beginning=False`` reader sees every record published after that call.

Tansu quirk handled here: its "latest" offset can point inside the last batch and its
timestamp lookup answers 0 when nothing matches, so on Tansu a ``from_beginning=False``
reader re-reads the last batch and drops records stamped before it subscribed, until
the first newer one arrives. Compaction is lazy on Kafka and absent on Tansu: an upsert
topic read from the beginning may show older values of a key before the latest one.
Rebalancing assumes an eager assignor (the default ``range,roundrobin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from pipeline.bus.base import BusClosed, BusError, Record, Subscription

__all__ = ["KafkaSubscription"]

log = logging.getLogger(__name__)

# Consumer errors that only say "the broker is away for now"; librdkafka reconnects.
#: seconds between metadata looks of a group-less subscription for new partitions
PARTITION_REFRESH_S = 5.0

_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._PARTITION_EOF,
    KafkaError._TIMED_OUT,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


class KafkaSubscription(Subscription):
    """One consumer; blocking calls run on the subscription's own worker thread.

    Made by :meth:`KafkaBus.subscribe`. ``timeout`` bounds metadata and offset lookups;
    ``is_tansu`` turns on the "latest" workaround; ``on_close`` tells the bus it is gone.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        group: str | None,
        from_beginning: bool,
        *,
        timeout: float,
        is_tansu: bool,
        on_close: Callable[[KafkaSubscription], None],
    ) -> None:
        self._timeout = timeout
        self._is_tansu = is_tansu
        self._on_close = on_close
        self._topics = topics
        self._group = group
        self._from_beginning = from_beginning
        # Records stamped at or before this millisecond were published before subscribe().
        self._created_ms = int(time.time() * 1000)
        if not from_beginning:
            # Step past this millisecond (at most 1 ms) so that every record published
            # after subscribe() returns is stamped later than _created_ms: the boundary
            # between "old" and "new" is then exact, not a tie.
            time.sleep(max(0.0, (self._created_ms + 1) / 1000 - time.time()))
        try:
            self._consumer = Consumer(config)
        except KafkaException as exc:
            raise BusError(f"cannot create Kafka consumer: {exc}") from exc
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kafkabus-sub")
        self._started = False
        self._closed = False
        self._buffer: list[Record] = []  # filled by the worker thread, under _lock
        self._lock = threading.Lock()
        self._positions: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        # Where partitions without a committed offset start.
        self._starts: dict[tuple[str, int], int] = {}
        # Partitions still skipping records older than the subscription (Tansu, latest).
        self._guard: set[tuple[str, int]] = set()
        # Without a group nobody tells us about partitions added later (an operator's
        # --alter --partitions, a broker re-creating lost topics with its default
        # count); look at the metadata now and then and read new ones from the start.
        self._assigned: set[tuple[str, int]] = set()
        self._refresh_every = PARTITION_REFRESH_S
        self._refreshed_at = 0.0
        self._pool.submit(self._start_quietly)

    def _start_quietly(self) -> None:
        # Errors surface from the first batch(), which calls _start_sync again.
        with contextlib.suppress(Exception):
            self._start_sync()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _start_sync(self) -> None:
        """Work out start positions, then assign (no group) or subscribe (group).

        Submitted to the worker thread by ``subscribe()`` itself, so a record published
        right after ``subscribe()`` returns is seen by a ``from_beginning=False`` reader.
        """
        if self._started:
            return
        timeout = self._timeout
        md = self._consumer.list_topics(timeout=timeout)
        parts = [
            TopicPartition(t, p)
            for t in self._topics
            if t in md.topics
            for p in sorted(md.topics[t].partitions)
        ]
        unplaced = parts
        if self._group is not None and parts:
            unplaced = [
                tp for tp in self._consumer.committed(parts, timeout=timeout) if tp.offset < 0
            ]
        for tp in unplaced:
            where = (tp.topic, tp.partition)
            self._starts[where] = (
                OFFSET_BEGINNING if self._from_beginning else self._latest_sync(tp, timeout)
            )
        if self._group is None:
            self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in self._starts.items()])
            self._assigned = set(self._starts)
            self._refreshed_at = time.monotonic()
        else:
            self._consumer.subscribe(self._topics, on_assign=self._on_assign)
        self._started = True

    def _latest_sync(self, tp: TopicPartition, timeout: float) -> int:
        """The offset of the first record published after this subscription was made."""
        low, high = self._consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        if self._is_tansu:
            # Tansu's high watermark may point inside the last batch, and its
            # timestamp lookup answers 0 when nothing matches: re-read the last batch
            # and drop what is older than the subscription.
            self._guard.add((tp.topic, tp.partition))
            return max(low, high - 1)
        # High watermark first: if no record is newer than the subscription yet, every
        # newer one lands at or after it.
        found = self._consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, self._created_ms + 1)], timeout=timeout
        )
        return found[0].offset if found and found[0].offset >= 0 else high

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Place partitions without a committed offset where ``subscribe()`` decided."""
        for tp in partitions:
            start = self._starts.get((tp.topic, tp.partition))
            if start is not None:
                tp.offset = start
        consumer.assign(partitions)

    def _refresh_partitions(self) -> None:
        """Group-less only: assign partitions that appeared since the last look."""
        self._refreshed_at = time.monotonic()
        try:
            md = self._consumer.list_topics(timeout=min(self._timeout, 2.0))
        except KafkaException as exc:
            log.debug("consumer: metadata refresh failed: %s", exc)
            return
        new = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in self._topics
            if t in md.topics
            for p in sorted(md.topics[t].partitions)
            if (t, p) not in self._assigned
        ]
        if new:
            log.info("consumer: new partitions %s", [(tp.topic, tp.partition) for tp in new])
            self._consumer.incremental_assign(new)
            self._assigned.update((tp.topic, tp.partition) for tp in new)

    def _fetch_sync(self, max_records: int, timeout: float) -> None:
        if not self._started:
            self._start_sync()
        if self._group is None and time.monotonic() - self._refreshed_at >= self._refresh_every:
            self._refresh_partitions()
        # consume(n, t) waits for n messages or all of t; batch() promises to return as
        # soon as the first record is there, so wait with poll() and drain without waiting.
        first = self._consumer.poll(timeout)
        if first is None:
            return
        rest = self._consumer.consume(max_records - 1, 0) if max_records > 1 else []
        records: list[Record] = []
        try:
            for msg in [first, *rest]:
                err = msg.error()
                if err is not None:
                    if err.code() in _TRANSIENT or err.retriable():
                        log.debug("consumer: %s", err)
                        continue
                    raise BusError(f"consumer error: {err.str()}")
                record = _record(msg)
                where = (record.topic, record.partition)
                if where in self._guard:
                    if record.timestamp_ms <= self._created_ms:
                        continue  # Tansu's "latest" pointed inside the last batch
                    self._guard.discard(where)
                records.append(record)
        finally:
            # Keep what was read even when an error follows, or it would be lost.
            with self._lock:
                self._buffer.extend(records)

    async def batch(self, max_records: int = 500, timeout: float = 0.1) -> list[Record]:
        if self._closed:
            raise BusClosed("subscription closed")
        if not self._buffer:
            # The worker fills self._buffer, so records survive a cancelled batch().
            try:
                await self._run(self._fetch_sync, max_records, max(timeout, 0.0))
            except KafkaException as exc:
                raise BusError(f"consume failed: {exc}") from exc
        with self._lock:
            out, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
        for r in out:
            self._positions[(r.topic, r.partition)] = r.offset + 1
        return out

    async def commit(self) -> None:
        if self._group is None or not self._positions or self._closed:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._positions.items()]
        try:
            await self._run(lambda: self._consumer.commit(offsets=offsets, asynchronous=False))
        except KafkaException as exc:
            raise BusError(f"commit failed: {exc}") from exc

    async def lag(self) -> int | None:
        """High watermark minus position over the assigned partitions (librdkafka's cached
        watermarks, refreshed by every fetch, so no broker round trip)."""
        if self._closed or not self._started:
            return None

        def measure() -> int | None:
            parts = self._consumer.assignment()
            if not parts:
                return None  # not joined (or not assigned) yet: unknown, not zero
            total = 0
            for tp in parts:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    return None  # no fetch answered yet
                position = self._positions.get((tp.topic, tp.partition))
                if position is None:
                    position = self._consumer.position([tp])[0].offset
                if position < 0:
                    # Nothing returned from this partition yet: an idle partition keeps an
                    # invalid position, so fall back on where the group committed.
                    position = self._committed_offset(tp)
                if position < 0:
                    low, _ = self._consumer.get_watermark_offsets(tp, cached=True)
                    if high <= max(low, 0):
                        continue  # an empty partition
                    return None
                total += max(0, high - position)
            return total

        try:
            lag = await self._run(measure)
            return None if lag is None else int(lag)
        except Exception:  # a consumer mid-rebalance: unknown this time
            return None

    def _committed_offset(self, tp: TopicPartition) -> int:
        """The group's committed offset of ``tp`` (one broker round trip, then cached)."""
        key = (tp.topic, tp.partition)
        cached = self._committed.get(key)
        if cached is None:
            if self._group is None:
                return -1
            (found,) = self._consumer.committed([TopicPartition(tp.topic, tp.partition)], 5.0)
            cached = self._committed[key] = found.offset
        return cached

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        try:
            await self._run(self._consumer.close)
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing consumer: %s", exc)
        finally:
            self._pool.shutdown(wait=False)


def _record(msg: Message) -> Record:
    """A bus record from a consumed (error-free) librdkafka message."""
    key = msg.key()
    value = msg.value()
    return Record(
        topic=msg.topic() or "",
        key=None if key is None else (key.decode() if isinstance(key, bytes) else key),
        value=None if value is None else bytes(value),
        offset=msg.offset() or 0,
        timestamp_ms=msg.timestamp()[1],
        partition=msg.partition() or 0,
    )
