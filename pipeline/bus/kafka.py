"""The Kafka bus: the promises of :mod:`pipeline.bus.base` on confluent-kafka.

Publishing: one idempotent producer (``enable.idempotence=true``, ``acks=all``) whose
``message.timeout.ms`` is ``publish_timeout``. A daemon thread polls it; the delivery
callback hands the outcome to the asyncio loop with ``call_soon_threadsafe``, where it
resolves the publisher's future. An ``asyncio.Semaphore`` bounds the records librdkafka
holds (a slot is released only when the delivery report arrives, so the bound is real),
and ``asyncio.timeout`` guards the whole wait, slot included, so ``publish`` never hangs.
A :class:`PublishError` means "not known to be durable": the record may still land later,
which is harmless for upsert topics (same key, same value) and a duplicate at worst on
append-only topics (consumers are at-least-once anyway).

Subscribing: one ``Consumer`` per subscription with its own single worker thread for the
blocking calls. ``group=None`` assigns every partition directly (no group join, so it reads
at once); a named group uses ``subscribe`` and commits explicitly in ``commit()``.

Broker quirks handled here (the Tansu test broker, see :mod:`pipeline.bus.tansu`):
group joins take ``session.timeout.ms / 2`` (pass a short ``session.timeout.ms`` through
``config`` in tests); its "latest" offset can point inside the last batch, so a
``from_beginning=False`` reader on Tansu drops records stamped before it subscribed until
the first newer one arrives. Compaction is lazy on Kafka and absent on Tansu: an upsert
topic read from the beginning may show older values of a key before the latest one;
readers keep the last value per key, which is what they must do on Kafka anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import (
    Message as KafkaMessage,
)
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, BusClosed, BusError, Message, PublishError, Record, Subscription

__all__ = ["KafkaBus"]

log = logging.getLogger(__name__)

_ROLES = ("producer.", "consumer.", "admin.")
# Consumer errors that only say "the broker is away for now"; librdkafka reconnects.
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


def _client_config(config: dict[str, Any], role: str) -> dict[str, Any]:
    """Keys without a role prefix go to every client; ``consumer.x`` only to consumers."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith(_ROLES):
            prefix, _, rest = key.partition(".")
            if prefix == role:
                out[rest] = value
        else:
            out[key] = value
    return out


class KafkaBus(Bus):
    """Bus on a Kafka-protocol cluster.

    ``config`` adds librdkafka properties to every client, or to one role with a
    ``producer.`` / ``consumer.`` / ``admin.`` prefix (``consumer.session.timeout.ms``).
    ``partitions`` and ``replication_factor`` apply to topics this bus creates.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        publish_timeout: float = 5.0,
        max_in_flight: int = 10_000,
        client_id: str = "gridctl",
        fetch_wait_max_ms: int = 20,
        config: dict[str, Any] | None = None,
        partitions: int = 1,
        replication_factor: int = 1,
    ) -> None:
        self.bootstrap = bootstrap
        self._timeout = publish_timeout
        self._max_in_flight = max_in_flight
        self._client_id = client_id
        self._fetch_wait_ms = fetch_wait_max_ms
        self._config = dict(config or {})
        self._partitions = partitions
        self._replication = replication_factor
        self._slots = asyncio.Semaphore(max_in_flight)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._polling = threading.Event()
        self._fatal = threading.Event()
        self._running = False
        self._subs: set[_KafkaSubscription] = set()
        #: True when the cluster is Tansu (enables the "latest offset" workaround).
        self.is_tansu = False

    # -- configuration -----------------------------------------------------------------
    def _base(self, role: str) -> dict[str, Any]:
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "client.id": self._client_id}
        conf.update(_client_config(self._config, role))
        return conf

    def _producer_config(self) -> dict[str, Any]:
        timeout_ms = max(1, int(self._timeout * 1000))
        conf = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": timeout_ms,
            # librdkafka holds at most max_in_flight records because of the semaphore.
            "queue.buffering.max.messages": max(self._max_in_flight, 1000),
            "error_cb": self._on_error,
        }
        conf.update(self._base("producer"))
        return conf

    def consumer_config(self, group: str | None, from_beginning: bool) -> dict[str, Any]:
        """The librdkafka configuration of a subscription's consumer."""
        conf = {
            "group.id": group or f"gridctl-nogroup-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": self._fetch_wait_ms,
        }
        conf.update(self._base("consumer"))
        return conf

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, create missing topics (upsert topics compacted), start polling."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(None, self.create_topics)
        self._producer = self._new_producer()
        # Connect now rather than on the first publish, which would otherwise pay for it.
        try:
            await self._loop.run_in_executor(None, self._producer.list_topics, None, self._timeout)
        except KafkaException as exc:
            raise BusError(f"Kafka at {self.bootstrap} unreachable: {exc}") from exc
        self._polling.set()
        self._poller = threading.Thread(target=self._poll_loop, name="kafkabus-poll", daemon=True)
        self._poller.start()
        self._running = True

    def _new_producer(self) -> Producer:
        try:
            return Producer(self._producer_config())
        except KafkaException as exc:
            raise BusError(f"cannot create Kafka producer: {exc}") from exc

    def create_topics(self, names: Sequence[str] = topic_names.ALL_TOPICS) -> None:
        """Create the topics in ``names`` that the cluster lacks (blocking).

        Upsert topics get ``cleanup.policy=compact``; a broker that refuses that config
        gets the topic without it (logged), since the readers fold by key regardless.
        """
        admin = AdminClient(self._base("admin"))
        try:
            md = admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise BusError(f"Kafka at {self.bootstrap} unreachable: {exc}") from exc
        self.is_tansu = "tansu" in str(md.cluster_id or "").lower()
        missing = [t for t in names if t not in md.topics]
        for topic in missing:
            config = {"cleanup.policy": "compact"} if topic_names.is_upsert(topic) else {}
            err = self._create_one(admin, topic, config)
            if err is not None and config:
                log.warning("broker refused %s for %s (%s); creating without", config, topic, err)
                err = self._create_one(admin, topic, {})
            if err is not None:
                raise BusError(f"cannot create topic {topic}: {err}")

    def _create_one(self, admin: AdminClient, topic: str, config: dict[str, str]) -> str | None:
        new = NewTopic(topic, self._partitions, self._replication, config=config)
        try:
            admin.create_topics([new], operation_timeout=self._timeout)[topic].result(self._timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return None
            return str(exc)
        except Exception as exc:  # concurrent.futures.TimeoutError and friends
            return f"{type(exc).__name__}: {exc}"
        return None

    async def stop(self) -> None:
        """Flush within ``publish_timeout``, fail what is left, close subscriptions."""
        if not self._running:
            return
        self._running = False
        for sub in list(self._subs):
            await sub.close()
        producer = self._producer
        loop = asyncio.get_running_loop()
        if producer is not None:
            left = await loop.run_in_executor(None, producer.flush, self._timeout)
            if left:
                producer.purge()
                await loop.run_in_executor(None, producer.flush, 1.0)
        self._polling.clear()
        if self._poller is not None:
            await loop.run_in_executor(None, self._poller.join, 5.0)
        self._producer = None

    def _poll_loop(self) -> None:
        """Serve delivery callbacks until stopped (runs in its own thread).

        A fatal producer error (e.g. a broker that lost its idempotence state, as a
        restarted in-memory Tansu does) leaves the producer unusable: the thread swaps in
        a fresh one and purges the old, whose delivery reports then fail its records and
        free their in-flight slots.
        """
        while self._polling.is_set():
            producer = self._producer
            if producer is None:
                time.sleep(0.05)
                continue
            if self._fatal.is_set():
                self._fatal.clear()
                self._replace_producer(producer)
                continue
            try:
                producer.poll(0.05)
            except KafkaException as exc:
                self._on_error(exc.args[0] if exc.args else exc)

    def _replace_producer(self, old: Producer) -> None:
        try:
            self._producer = self._new_producer()
        except BusError as exc:
            log.error("%s", exc)
            time.sleep(0.5)
            self._fatal.set()
            return
        old.purge()
        with contextlib.suppress(KafkaException):
            old.flush(1.0)

    def _on_error(self, err: object) -> None:
        """librdkafka's error callback (poll thread): connection trouble or fatal."""
        if isinstance(err, KafkaError) and err.fatal():
            log.error("Kafka producer fatal error (%s); replacing the producer", err)
            self._fatal.set()
        else:
            log.debug("Kafka producer: %s", err)

    # -- publish -----------------------------------------------------------------------
    async def publish(self, topic: str, key: str | None, value: bytes | None) -> None:
        await self.publish_many([Message(topic, key, value)])

    async def publish_many(self, messages: Sequence[Message]) -> None:
        """Produce every record in order, then wait for all acknowledgements.

        Each record has ``publish_timeout`` from the moment it starts waiting for a slot.
        Records are handed to librdkafka in order, so records with one key keep it.
        """
        if not self._running:
            raise PublishError("bus is stopped")
        loop = asyncio.get_running_loop()
        waits: list[tuple[asyncio.Future[None], float]] = []
        first_error: BaseException | None = None
        for m in messages:
            deadline = loop.time() + self._timeout
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                first_error = PublishError(f"{m.topic}: no in-flight slot within {self._timeout} s")
                break
            fut = loop.create_future()
            try:
                self._produce(m, fut)
            except BaseException as exc:
                self._slots.release()
                first_error = exc
                break
            waits.append((fut, deadline))
        for fut, deadline in waits:
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(fut)
            except TimeoutError:
                first_error = first_error or PublishError(
                    f"not acknowledged within {self._timeout} s"
                )
            except PublishError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _produce(self, m: Message, fut: asyncio.Future[None]) -> None:
        producer = self._producer
        if producer is None:
            raise PublishError("bus is stopped")
        loop = self._loop
        assert loop is not None

        def delivered(err: KafkaError | None, _msg: KafkaMessage) -> None:
            # Runs on the poll thread: hand over to the loop, never touch the future here.
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._settle, fut, err, m.topic)

        try:
            producer.produce(
                m.topic,
                value=m.value,
                key=None if m.key is None else m.key.encode(),
                on_delivery=delivered,
            )
        except BufferError as exc:
            raise PublishError(f"{m.topic}: producer queue full") from exc
        except KafkaException as exc:
            self._on_error(exc.args[0] if exc.args else None)
            raise PublishError(f"{m.topic}: {exc}") from exc

    def _settle(self, fut: asyncio.Future[None], err: KafkaError | None, topic: str) -> None:
        self._slots.release()
        if fut.done():
            return
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(PublishError(f"{topic}: {err.str()}"))
        # Nobody may await a future whose waiter timed out; mark its exception as seen.
        if fut.exception() is not None:
            fut.exception()

    # -- subscribe ---------------------------------------------------------------------
    def subscribe(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        from_beginning: bool = True,
    ) -> Subscription:
        if not self._running:
            raise BusClosed("bus is stopped")
        sub = _KafkaSubscription(self, list(topics), group, from_beginning)
        self._subs.add(sub)
        return sub


class _KafkaSubscription(Subscription):
    """One consumer; blocking calls run on the subscription's own worker thread."""

    def __init__(
        self, bus: KafkaBus, topics: list[str], group: str | None, from_beginning: bool
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._from_beginning = from_beginning
        self._created_ms = int(time.time() * 1000)
        try:
            self._consumer = Consumer(bus.consumer_config(group, from_beginning))
        except KafkaException as exc:
            raise BusError(f"cannot create Kafka consumer: {exc}") from exc
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kafkabus-sub")
        self._started = False
        self._closed = False
        self._buffer: list[Record] = []  # filled by the worker thread, under _lock
        self._lock = threading.Lock()
        self._positions: dict[tuple[str, int], int] = {}
        # Where partitions without a committed offset start.
        self._starts: dict[tuple[str, int], int] = {}
        # Partitions still skipping records older than the subscription (Tansu, latest).
        self._guard: set[tuple[str, int]] = set()
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
        timeout = self._bus._timeout
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
        else:
            self._consumer.subscribe(self._topics, on_assign=self._on_assign)
        self._started = True

    def _latest_sync(self, tp: TopicPartition, timeout: float) -> int:
        """The offset of the first record published after this subscription was made."""
        low, high = self._consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        if self._bus.is_tansu:
            # Tansu's high watermark may point inside the last batch, and its
            # timestamp lookup answers 0 when nothing matches: re-read the last batch
            # and drop what is older than the subscription.
            self._guard.add((tp.topic, tp.partition))
            return max(low, high - 1)
        # High watermark first: if no record is newer than the subscription yet, every
        # newer one lands at or after it.
        found = self._consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, self._created_ms)], timeout=timeout
        )
        return found[0].offset if found and found[0].offset >= 0 else high

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Place partitions without a committed offset where ``subscribe()`` decided."""
        for tp in partitions:
            start = self._starts.get((tp.topic, tp.partition))
            if start is not None:
                tp.offset = start
        consumer.assign(partitions)

    def _fetch_sync(self, max_records: int, timeout: float) -> None:
        if not self._started:
            self._start_sync()
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
                ts = msg.timestamp()[1]
                where = (msg.topic(), msg.partition())
                if where in self._guard:
                    if ts < self._created_ms:
                        continue  # Tansu's "latest" pointed inside the last batch
                    self._guard.discard(where)
                key = msg.key()
                records.append(
                    Record(
                        topic=msg.topic(),
                        key=None if key is None else key.decode(),
                        value=msg.value(),
                        offset=msg.offset(),
                        timestamp_ms=ts,
                        partition=msg.partition(),
                    )
                )
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

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._subs.discard(self)
        try:
            await self._run(self._consumer.close)
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing consumer: %s", exc)
        finally:
            self._pool.shutdown(wait=False)
