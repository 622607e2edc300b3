"""The bus promises (pipeline/bus/base.py), checked on LocalBus and on KafkaBus.

Kafka runs on the session broker (Tansu unless ``KAFKA_BOOTSTRAP`` or Docker); its topics
are shared with other tests, so every test uses its own keys and groups and ignores
records that are not its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import topics
from pipeline.bus import Bus, BusClosed, LocalBus, Message, PublishError, Record, Subscription
from tests.fixtures.kafka import KafkaBroker, unique_key

APPEND = topics.METER_VALUES
UPSERT = topics.SET_CHARGING_PROFILE

MakeBus = Callable[..., Awaitable[Bus]]


async def collect(sub: Subscription, keys: set[str], count: int, rounds: int = 150) -> list[Record]:
    """Read until ``count`` records with one of ``keys`` arrived (or give up after rounds)."""
    got: list[Record] = []
    for _ in range(rounds):
        got.extend(r for r in await sub.batch(timeout=0.2) if r.key in keys)
        if len(got) >= count:
            break
    return got


def values(records: list[Record]) -> list[bytes | None]:
    return [r.value for r in records]


@pytest.fixture(params=["local", "kafka"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    """A factory of started buses with custom settings, stopped after the test."""
    made: list[Bus] = []
    broker: KafkaBroker | None = None
    if request.param == "kafka":
        broker = request.getfixturevalue("kafka")

    async def make(**kwargs: Any) -> Bus:
        bus: Bus
        if broker is None:
            bus = LocalBus(**kwargs)
        else:
            from pipeline.bus import KafkaBus

            bus = KafkaBus(broker.bootstrap, **broker.bus_config(), **kwargs)
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.stop()


async def test_round_trip(any_bus: Bus) -> None:
    key = unique_key("st")
    await any_bus.publish(APPEND, key, b'{"v": 1}')
    async with any_bus.subscribe([APPEND]) as sub:
        [record] = await collect(sub, {key}, 1)
    assert record.topic == APPEND
    assert record.key == key
    assert record.value == b'{"v": 1}'
    assert record.offset >= 0
    assert record.timestamp_ms > 0


async def test_order_per_key(any_bus: Bus) -> None:
    a, b = unique_key("a"), unique_key("b")
    for i in range(10):
        await any_bus.publish(APPEND, a, b"a%d" % i)
        await any_bus.publish(APPEND, b, b"b%d" % i)
    async with any_bus.subscribe([APPEND]) as sub:
        got = await collect(sub, {a, b}, 20)
    assert values([r for r in got if r.key == a]) == [b"a%d" % i for i in range(10)]
    assert values([r for r in got if r.key == b]) == [b"b%d" % i for i in range(10)]
    offsets = [r.offset for r in got]
    assert offsets == sorted(offsets)


async def test_tombstone_is_delivered_as_none(any_bus: Bus) -> None:
    key = unique_key("st")
    async with any_bus.subscribe([UPSERT], from_beginning=False) as sub:
        # Read in between: an upsert topic may legitimately compact "limit" away.
        await any_bus.publish(UPSERT, key, b"limit")
        got = await collect(sub, {key}, 1)
        await any_bus.publish(UPSERT, key, None)
        got += await collect(sub, {key}, 1)
    assert values(got) == [b"limit", None]


async def test_upsert_topic_replays_latest_value_per_key(any_bus: Bus) -> None:
    k1, k2, k3 = unique_key("s1"), unique_key("s2"), unique_key("s3")
    await any_bus.publish_many(
        [
            Message(UPSERT, k1, b"1a"),
            Message(UPSERT, k2, b"2a"),
            Message(UPSERT, k1, b"1b"),
            Message(UPSERT, k3, b"3a"),
            Message(UPSERT, k2, None),
            Message(UPSERT, k3, b"3b"),
        ]
    )
    async with any_bus.subscribe([UPSERT]) as sub:
        # Kafka compacts lazily (Tansu never), so older values may come first; what a
        # reader ends with after folding by key is what counts. LocalBus compacts at once.
        got = await collect(sub, {k1, k2, k3}, 3)
        if isinstance(any_bus, LocalBus):
            assert len(got) == 3
        else:
            got += await collect(sub, {k1, k2, k3}, 3, rounds=3)
    latest = {r.key: r.value for r in got}
    assert latest == {k1: b"1b", k2: None, k3: b"3b"}


async def test_group_resumes_after_committed_offset(any_bus: Bus) -> None:
    key, group = unique_key("st"), unique_key("group")
    await any_bus.publish_many([Message(APPEND, key, b"a"), Message(APPEND, key, b"b")])
    async with any_bus.subscribe([APPEND], group=group) as sub:
        assert values(await collect(sub, {key}, 2)) == [b"a", b"b"]
        await sub.commit()
    await any_bus.publish(APPEND, key, b"c")
    async with any_bus.subscribe([APPEND], group=group) as sub:
        assert values(await collect(sub, {key}, 1)) == [b"c"]


async def test_group_without_commit_replays(any_bus: Bus) -> None:
    key, group = unique_key("st"), unique_key("group")
    await any_bus.publish(APPEND, key, b"a")
    async with any_bus.subscribe([APPEND], group=group) as sub:
        assert values(await collect(sub, {key}, 1)) == [b"a"]
    async with any_bus.subscribe([APPEND], group=group) as sub:
        assert values(await collect(sub, {key}, 1)) == [b"a"]


@pytest.mark.parametrize("grouped", [False, True], ids=["no-group", "new-group"])
async def test_from_beginning_false_sees_only_new_records(any_bus: Bus, grouped: bool) -> None:
    key = unique_key("st")
    group = unique_key("group") if grouped else None
    await any_bus.publish_many([Message(APPEND, key, b"old%d" % i) for i in range(5)])
    # Published right after subscribe() returns, before any batch(): must still be seen.
    async with any_bus.subscribe([APPEND], group=group, from_beginning=False) as sub:
        await any_bus.publish(APPEND, key, b"new")
        got = await collect(sub, {key}, 1)
        got += await collect(sub, {key}, 1, rounds=2)
    assert values(got) == [b"new"]


async def test_publish_many_delivers_every_record_in_order(any_bus: Bus) -> None:
    key = unique_key("st")
    batch = [Message(APPEND, key, b"%d" % i) for i in range(200)]
    await any_bus.publish_many(batch)
    async with any_bus.subscribe([APPEND]) as sub:
        got = await collect(sub, {key}, 200)
    assert values(got) == [m.value for m in batch]


async def test_back_pressure_with_one_slot_completes(make_bus: MakeBus) -> None:
    bus = await make_bus(max_in_flight=1)
    key = unique_key("st")
    await asyncio.gather(*(bus.publish(APPEND, key, b"%d" % i) for i in range(50)))
    await bus.publish_many([Message(APPEND, key, b"m%d" % i) for i in range(50)])
    async with bus.subscribe([APPEND]) as sub:
        got = await collect(sub, {key}, 100)
    assert len(got) == 100
    assert values(got)[50:] == [b"m%d" % i for i in range(50)]


async def test_closed_subscription_refuses_batch(any_bus: Bus) -> None:
    sub = any_bus.subscribe([APPEND])
    await sub.close()
    with pytest.raises(BusClosed):
        await sub.batch()


async def test_stopped_bus_refuses_publish(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.stop()
    with pytest.raises(PublishError, match="stopped"):
        await bus.publish(APPEND, "s", b"x")


def test_kafka_bus_is_exported_lazily() -> None:
    import pipeline.bus
    from pipeline.bus.kafka import KafkaBus

    assert pipeline.bus.KafkaBus is KafkaBus
    assert "KafkaBus" in pipeline.bus.__all__


async def test_stopped_broker_fails_publish_within_timeout(own_tansu: KafkaBroker) -> None:
    from pipeline.bus import KafkaBus

    bus = KafkaBus(
        own_tansu.bootstrap, publish_timeout=1.0, max_in_flight=1, **own_tansu.bus_config()
    )
    await bus.start()
    try:
        await bus.publish(APPEND, "s", b"before")
        own_tansu.stop()
        # The guard is a hang detector, far above publish_timeout, not a speed check.
        # With one slot, the second and third publishes fail while waiting for it.
        async with asyncio.timeout(15):
            results = await asyncio.gather(
                *(bus.publish(APPEND, "s", b"during") for _ in range(3)),
                return_exceptions=True,
            )
        assert all(isinstance(r, PublishError) for r in results), results
        own_tansu.start()  # memory storage: an empty broker on the same port
        await asyncio.get_running_loop().run_in_executor(None, bus.create_topics)
        for _ in range(20):  # the producer reconnects on its own
            try:
                await bus.publish(APPEND, "s", b"after")
                break
            except PublishError:
                await asyncio.sleep(0.5)
        async with bus.subscribe([APPEND]) as sub:
            assert values(await collect(sub, {"s"}, 1)) == [b"after"]
    finally:
        await bus.stop()


async def test_local_wal_survives_restart(tmp_path: Path) -> None:
    # A generous timeout: on a shared, busy disk one fsync has been seen to take > 5 s.
    bus = LocalBus(tmp_path, publish_timeout=30)
    await bus.start()
    await bus.publish(APPEND, "s1", b"m1")
    await bus.publish(UPSERT, "s1", b"old")
    await bus.publish(UPSERT, "s1", b"new")
    await bus.publish(UPSERT, "s2", None)
    async with bus.subscribe([APPEND], group="g") as sub:
        assert values(await collect(sub, {"s1"}, 1)) == [b"m1"]
        await sub.commit()
    await bus.publish(APPEND, "s1", b"m2")
    await bus.stop()

    again = LocalBus(tmp_path)
    await again.start()
    try:
        async with again.subscribe([UPSERT]) as sub:
            got = await collect(sub, {"s1", "s2"}, 2)
        assert {r.key: r.value for r in got} == {"s1": b"new", "s2": None}
        async with again.subscribe([APPEND], group="g") as sub:
            assert values(await collect(sub, {"s1"}, 1)) == [b"m2"]
    finally:
        await again.stop()


async def test_kafka_several_partitions_keep_order_per_key(own_tansu: KafkaBroker) -> None:
    from pipeline.bus import KafkaBus

    bus = KafkaBus(own_tansu.bootstrap, partitions=3, **own_tansu.bus_config())
    await bus.start()
    try:
        keys = [f"st-{i}" for i in range(6)]
        await bus.publish_many([Message(APPEND, k, b"%d" % n) for n in range(5) for k in keys])
        async with bus.subscribe([APPEND], group="g") as sub:
            got = await collect(sub, set(keys), 30)
            await sub.commit()
        assert len({r.partition for r in got}) > 1
        for k in keys:
            assert values([r for r in got if r.key == k]) == [b"%d" % n for n in range(5)]
        await bus.publish(APPEND, keys[0], b"next")
        async with bus.subscribe([APPEND], group="g") as sub:
            assert values(await collect(sub, set(keys), 1)) == [b"next"]
    finally:
        await bus.stop()


async def test_kafka_start_creates_topics_upsert_compacted(kafka: KafkaBroker) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from pipeline.bus import KafkaBus

    async with KafkaBus(kafka.bootstrap, **kafka.bus_config()):
        pass
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    assert set(topics.ALL_TOPICS) <= set(admin.list_topics(timeout=10).topics)
    resources = [ConfigResource("topic", t) for t in (UPSERT, APPEND)]
    described = {r.name: f.result(10) for r, f in admin.describe_configs(resources).items()}
    assert described[UPSERT]["cleanup.policy"].value == "compact"
    plain = described[APPEND].get("cleanup.policy")  # Tansu lists only what was set
    assert plain is None or plain.value != "compact"


async def test_kafka_start_without_broker_raises_bus_error() -> None:
    from pipeline.bus import BusError, KafkaBus
    from pipeline.bus.tansu import free_port

    bus = KafkaBus(f"127.0.0.1:{free_port()}", publish_timeout=0.5)
    async with asyncio.timeout(15):
        with pytest.raises(BusError, match="unreachable"):
            await bus.start()


async def test_subscription_lag_counts_what_is_not_read_yet(any_bus: Bus) -> None:
    key = unique_key()
    sub = any_bus.subscribe([topics.METER_VALUES], group=f"lag-{key}", from_beginning=False)
    try:
        await sub.batch(timeout=0.5)  # joined, positioned at the end
        for i in range(5):
            await any_bus.publish(topics.METER_VALUES, key, f"{i}".encode())
        got: list[Record] = []
        async with asyncio.timeout(20):
            while len(got) < 5:
                got += [r for r in await sub.batch(timeout=1.0) if r.key == key]
        assert await sub.lag() == 0
    finally:
        await sub.close()


async def test_local_subscription_lag_is_exact() -> None:
    bus = LocalBus()
    await bus.start()
    sub = bus.subscribe([topics.METER_VALUES], from_beginning=True)
    for i in range(5):
        await bus.publish(topics.METER_VALUES, "k", f"{i}".encode())
    assert await sub.lag() == 5
    assert len(await sub.batch(max_records=3, timeout=0)) == 3
    assert await sub.lag() == 2
    await bus.stop()


async def test_lag_is_never_zero_while_records_wait(any_bus: Bus) -> None:
    """The engine waits for ``lag() == 0`` before its first evaluation: a consumer that
    has not joined yet must say "unknown", never "caught up"."""
    key = unique_key()
    for i in range(3):
        await any_bus.publish(topics.COMMAND_RESULTS, key, f"{i}".encode())
    sub = any_bus.subscribe([topics.COMMAND_RESULTS], group=f"lag0-{key}", from_beginning=True)
    try:
        lag = await sub.lag()
        assert lag is None or lag >= 3
    finally:
        await sub.close()
