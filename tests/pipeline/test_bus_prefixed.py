"""PrefixedBus: contract names in, prefixed names on the transport, contract names out."""

from __future__ import annotations

from pipeline import topics
from pipeline.bus.local import LocalBus
from pipeline.bus.prefixed import PrefixedBus, with_prefix


async def test_names_are_prefixed_on_the_transport_and_stripped_on_records() -> None:
    raw = LocalBus()
    bus = PrefixedBus(raw, "siteA.")
    await bus.start()
    try:
        sub = bus.subscribe([topics.METER_VALUES])
        await bus.publish(topics.METER_VALUES, "S1", b"{}")
        got = await sub.batch(10, timeout=1.0)
        assert [(r.topic, r.key) for r in got] == [(topics.METER_VALUES, "S1")]
        physical = raw.subscribe(["siteA." + topics.METER_VALUES])
        assert [r.key for r in await physical.batch(10, timeout=0)] == ["S1"]
        bare = raw.subscribe([topics.METER_VALUES])
        assert await bare.batch(10, timeout=0) == []
    finally:
        await bus.stop()


async def test_prefixed_upsert_topics_stay_upsert() -> None:
    assert topics.is_upsert("siteA." + topics.SET_CHARGING_PROFILE)
    assert not topics.is_upsert("siteA." + topics.METER_VALUES)
    raw = LocalBus()
    bus = PrefixedBus(raw, "siteA.")
    await bus.start()
    try:
        await bus.publish(topics.STATION_ZONES, "S1", b'{"v": 1}')
        await bus.publish(topics.STATION_ZONES, "S1", b'{"v": 2}')
        # A new subscriber of an upsert topic sees the latest value per key only.
        got = await bus.subscribe([topics.STATION_ZONES]).batch(10, timeout=0)
        assert [(r.key, r.value) for r in got] == [("S1", b'{"v": 2}')]
    finally:
        await bus.stop()


def test_no_prefix_is_the_bus_itself() -> None:
    raw = LocalBus()
    assert with_prefix(raw, "") is raw
