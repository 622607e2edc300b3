"""LocalBus's log keeps its deadlines without a timer per publish.

The writer holds one deadline per group commit (the earliest of everyone waiting) and
fails each waiter past its own; these tests stall the real log (``StalledLog``) and
check that every publish still ends within its time, that none is confirmed before its
fsync, and that back-pressure (``max_in_flight``) counts in the same deadline.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pipeline import topics
from pipeline.bus import LocalBus, Message, PublishError, wal
from tests.fixtures.stalled_log import StalledLog

TOPIC = topics.METER_VALUES


def values_in_log(path: Path) -> list[bytes | None]:
    return [e.value for e in wal.recover(path / "bus.log")]


async def test_a_stalled_log_fails_the_publish_at_publish_timeout(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path, publish_timeout=0.3)
    await bus.start()
    stall = StalledLog(bus)
    try:
        t0 = time.monotonic()
        with pytest.raises(PublishError, match=r"not durable within 0\.3 s"):
            await bus.publish(TOPIC, "k", b"a")
        # the deadline, not the stall (30 s), ended it; 2 s is a hang guard, not a speed check
        assert 0.3 <= time.monotonic() - t0 < 2.0
        assert values_in_log(tmp_path) == []
    finally:
        stall.release()
        await bus.stop()


async def test_a_shorter_timeout_arriving_mid_stall_is_kept(tmp_path: Path) -> None:
    """A waiter with a 0.2 s timeout behind one with 30 s: the writer's single timer was
    set for 30 s and must be moved earlier, or the short one would wait 30 s."""
    bus = LocalBus(tmp_path, publish_timeout=30)
    await bus.start()
    stall = StalledLog(bus)
    try:
        slow = asyncio.ensure_future(bus.publish(TOPIC, "k", b"slow"))
        await asyncio.to_thread(stall.entered.wait, 10)  # the first write is stuck
        t0 = time.monotonic()
        with pytest.raises(PublishError, match=r"not durable within 0\.2 s"):
            await bus.publish_many([Message(TOPIC, "k", b"short")], timeout=0.2)
        assert 0.2 <= time.monotonic() - t0 < 2.0
        assert not slow.done()  # still waiting for its fsync, never confirmed early
        stall.release()
        await asyncio.wait_for(slow, 10)
    finally:
        stall.release()
        await bus.stop()
    # the refused one may reach the log once the disk moves (at least once); after the
    # confirmed one, which was written first
    assert values_in_log(tmp_path)[0] == b"slow"


async def test_no_publish_resolves_before_its_fsync(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path, publish_timeout=30)
    await bus.start()
    stall = StalledLog(bus)
    try:
        waiting = [asyncio.ensure_future(bus.publish(TOPIC, "k", b"%d" % i)) for i in range(5)]
        await asyncio.to_thread(stall.entered.wait, 10)
        await asyncio.sleep(0.3)  # room for a wrong early confirmation
        assert not any(w.done() for w in waiting)
        stall.release()
        await asyncio.wait_for(asyncio.gather(*waiting), 10)
        assert values_in_log(tmp_path) == [b"%d" % i for i in range(5)]
    finally:
        stall.release()
        await bus.stop()


async def test_back_pressure_on_the_log_counts_in_the_deadline(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path, publish_timeout=30, max_in_flight=1)
    await bus.start()
    stall = StalledLog(bus)
    try:
        first = asyncio.ensure_future(bus.publish(TOPIC, "k", b"first"))
        await asyncio.to_thread(stall.entered.wait, 10)
        with pytest.raises(PublishError, match=r"no in-flight slot within 0\.2 s"):
            await bus.publish_many([Message(TOPIC, "k", b"second")], timeout=0.2)
        third = asyncio.ensure_future(bus.publish(TOPIC, "k", b"third"))  # waits its turn
        await asyncio.sleep(0.1)
        assert not third.done()
        stall.release()
        await asyncio.wait_for(asyncio.gather(first, third), 10)
    finally:
        stall.release()
        await bus.stop()
    assert values_in_log(tmp_path) == [b"first", b"third"]  # the refused one never queued


async def test_many_publishers_through_few_slots_all_land_in_order(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path, max_in_flight=3)
    await bus.start()
    try:
        await asyncio.gather(*(bus.publish(TOPIC, "k", b"%d" % i) for i in range(200)))
        async with bus.subscribe([TOPIC]) as sub:
            got = [r.value for r in await sub.batch(500, timeout=1)]
    finally:
        await bus.stop()
    expected = [b"%d" % i for i in range(200)]
    assert got == expected
    assert values_in_log(tmp_path) == expected


async def test_the_prefixed_bus_passes_the_callers_timeout_on(tmp_path: Path) -> None:
    """``gridctl run`` hands the gateway ``with_prefix(LocalBus)``: a timeout dropped on
    the way would leave the gateway's ack_timeout unkept."""
    from pipeline.bus.prefixed import with_prefix

    inner = LocalBus(tmp_path, publish_timeout=30)
    bus = with_prefix(inner, "site1.")
    await bus.start()
    stall = StalledLog(inner)
    try:
        t0 = time.monotonic()
        with pytest.raises(PublishError, match=r"not durable within 0\.2 s"):
            await bus.publish_many([Message(TOPIC, "k", b"x")], timeout=0.2)
        assert time.monotonic() - t0 < 2.0
    finally:
        stall.release()
        await bus.stop()
