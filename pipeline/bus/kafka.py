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

Subscribing: :class:`~pipeline.bus.kafka_subscription.KafkaSubscription`, one consumer
per subscription. Tansu (the test broker, :mod:`pipeline.bus.tansu`) makes a group join
wait ``session.timeout.ms / 2``: pass a short ``consumer.session.timeout.ms`` in
``config`` in tests. Topics are created with ``replication_factor=-1`` by default, i.e.
the broker's ``default.replication.factor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as KafkaMessage
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, BusClosed, BusError, Message, PublishError, Subscription
from pipeline.bus.kafka_subscription import KafkaSubscription

__all__ = ["KafkaBus"]

log = logging.getLogger(__name__)

_ROLES = ("producer.", "consumer.", "admin.")


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
        replication_factor: int = -1,
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
        self._subs: set[KafkaSubscription] = set()
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
            # librdkafka's 45 s default makes a Tansu group join wait ~22 s; 10 s (the
            # old Kafka default) notices a dead engine sooner and joins Tansu in ~5 s.
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
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

    async def ping(self, timeout: float = 2.0) -> str:
        """Ask the brokers for metadata: a broker that does not answer is the bus down."""
        producer = self._producer
        if not self._running or producer is None:
            raise BusError("Kafka bus is stopped")
        try:
            md = await asyncio.get_running_loop().run_in_executor(
                None, producer.list_topics, None, timeout
            )
        except KafkaException as exc:
            raise BusError(f"Kafka at {self.bootstrap} unreachable: {exc}") from exc
        return f"Kafka, {len(md.brokers)} broker(s)"

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

    async def publish_many(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> None:
        """Produce every record in order, then wait for all acknowledgements.

        Each record has ``publish_timeout`` (or ``timeout``, when shorter) from the moment
        it starts waiting for a slot.
        Records are handed to librdkafka in order, so records with one key keep it.
        """
        if not self._running:
            raise PublishError("bus is stopped")
        loop = asyncio.get_running_loop()
        waits: list[tuple[asyncio.Future[None], float, str]] = []
        first_error: BaseException | None = None
        limit = self._timeout if timeout is None else min(timeout, self._timeout)
        for m in messages:
            deadline = loop.time() + limit
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                first_error = PublishError(f"{m.topic}: no in-flight slot within {limit:g} s")
                break
            fut = loop.create_future()
            try:
                self._produce(m, fut)
            except BaseException as exc:
                self._slots.release()
                first_error = exc
                break
            waits.append((fut, deadline, m.topic))
        for fut, deadline, topic in waits:
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(fut)
            except TimeoutError:
                first_error = first_error or PublishError(
                    f"{topic}: not acknowledged within {limit:g} s"
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
        sub = KafkaSubscription(
            self.consumer_config(group, from_beginning),
            list(topics),
            group,
            from_beginning,
            timeout=self._timeout,
            is_tansu=self.is_tansu,
            on_close=self._subs.discard,
        )
        self._subs.add(sub)
        return sub
