"""LocalBus read from another thread's loop while the bus's own loop is blocked.

``gridctl run`` runs the engine on its own thread; at 5,000 chargers every read it sent
through the gateway's loop waited ~0.8 s for a turn (``bench/dr_latency.py``,
``ingest_bus``). A LocalBus subscription is read, committed and woken directly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pipeline.bus.base import Message
from pipeline.bus.local import LocalBus
from pipeline.engine.thread import LoopBus

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


class OtherLoop:
    """An event loop on a thread of its own (the engine's, in ``gridctl run``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def engine_subscription(bus: LocalBus, topics: list[str], **options: Any) -> Any:
    """A subscription made as the engine's thread makes it (LoopBus.subscribe blocks on
    the bus's loop, so it is called from a thread while this loop runs)."""
    owner = asyncio.get_running_loop()
    return await asyncio.to_thread(lambda: LoopBus(bus, owner).subscribe(topics, **options))


async def test_reads_and_commits_need_no_turn_of_the_bus_loop(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path / "bus")
    await bus.start()
    other = OtherLoop()
    try:
        sub = await engine_subscription(bus, ["ocpp.meter_values"], group="g")
        await bus.publish_many([Message("ocpp.meter_values", f"S{i}", b"{}") for i in range(3)])
        seen: dict[str, Any] = {}

        def block_owner() -> None:
            # A gateway callback that does not yield: nothing else runs on this loop.
            seen["batch"] = other.run(sub.batch(max_records=10, timeout=0))
            seen["lag"] = other.run(sub.commit_and_lag())

        asyncio.get_running_loop().call_soon(block_owner)
        await asyncio.sleep(0)  # the callback runs (and returns) before this resumes
        await asyncio.sleep(0)
        assert [r.key for r in seen["batch"]] == ["S0", "S1", "S2"]
        assert seen["lag"] == 0
        await bus.stop()
        # The commit made on the other thread is the group's, across a restart.
        again = LocalBus(tmp_path / "bus")
        await again.start()
        rest = again.subscribe(["ocpp.meter_values"], group="g")
        assert await rest.batch(timeout=0) == []
        await again.stop()
    finally:
        other.close()


async def test_a_reader_on_another_loop_is_woken_by_an_append() -> None:
    bus = LocalBus()
    await bus.start()
    other = OtherLoop()
    try:
        sub = await engine_subscription(bus, ["dr.signals"], from_beginning=False)
        waiting = other.submit(sub.batch(max_records=10, timeout=20))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nothing yet: it waits
        began = time.monotonic()
        await bus.publish("dr.signals", "sig", b"{}")
        records = await asyncio.wrap_future(waiting)
        assert [r.key for r in records] == ["sig"]
        assert time.monotonic() - began < 2.0  # woken, not timed out after 20 s
    finally:
        await bus.stop()
        other.close()


async def test_concurrent_appends_and_reads_lose_and_repeat_nothing() -> None:
    bus = LocalBus(retention_records=1_000_000)
    await bus.start()
    other = OtherLoop()
    try:
        sub = await engine_subscription(bus, ["ocpp.meter_values"], group="g")
        n = 20_000

        async def read_all() -> list[int]:
            got: list[int] = []
            while len(got) < n:
                got += [r.offset for r in await sub.batch(max_records=700, timeout=0.5)]
            return got

        reader = other.submit(read_all())
        for start in range(0, n, 100):
            await bus.publish_many(
                [Message("ocpp.meter_values", str(i), b"{}") for i in range(start, start + 100)]
            )
            await asyncio.sleep(0)
        offsets = await asyncio.wrap_future(reader)
        assert offsets == list(range(n))
    finally:
        await bus.stop()
        other.close()


async def test_a_publish_from_another_loop_is_durable_in_the_order_of_the_file(
    tmp_path: Path,
) -> None:
    """The engine's thread publishes without a task on the bus's loop; readers see every
    record once it is fsynced, in the order of the file, so the offsets a group committed
    before a restart name the same records after it."""
    bus = LocalBus(tmp_path / "bus")
    await bus.start()
    other = OtherLoop()
    topic = "ocpp.commands.set_charging_profile"
    try:

        async def engine_side() -> None:
            for i in range(50):
                await bus.publish_many([Message(topic, f"E{i}", b"{}")])

        from_engine = other.submit(engine_side())
        for i in range(50):
            await bus.publish(topic, f"G{i}", b"{}")
        await asyncio.wrap_future(from_engine)
        live = bus.subscribe([topic], group=None, from_beginning=False)
        live.seek(topic, 0)
        seen = [(r.offset, r.key) for r in await live.batch(max_records=1000, timeout=0)]
        assert len(seen) == 100 and [o for o, _ in seen] == list(range(100))
        assert {k for _, k in seen} == {f"E{i}" for i in range(50)} | {f"G{i}" for i in range(50)}
        await bus.stop()
        again = LocalBus(tmp_path / "bus")
        await again.start()
        after = again.subscribe([topic], group=None, from_beginning=False)
        after.seek(topic, 0)
        assert [(r.offset, r.key) for r in await after.batch(max_records=1000, timeout=0)] == seen
        await again.stop()
    finally:
        other.close()


async def test_a_publish_from_another_loop_fails_past_its_deadline_while_the_disk_stalls(
    tmp_path: Path,
) -> None:
    from pipeline.bus.base import PublishError
    from tests.fixtures.stalled_log import StalledLog

    bus = LocalBus(tmp_path / "bus", publish_timeout=0.3)
    await bus.start()
    other = OtherLoop()
    stall = StalledLog(bus)
    try:
        failed = other.submit(bus.publish("ocpp.commands.set_charging_profile", "S", b"{}"))
        with pytest.raises(PublishError, match=r"not durable within 0\.3 s"):
            await asyncio.wait_for(asyncio.wrap_future(failed), 5)
        sub = bus.subscribe(["ocpp.commands.set_charging_profile"], from_beginning=True)
        assert await sub.batch(timeout=0) == []  # not acknowledged, not visible
    finally:
        stall.release()
        await bus.stop()
        other.close()


async def test_a_publish_from_another_loop_needs_no_turn_of_the_bus_loop(tmp_path: Path) -> None:
    """The group commit runs on its own thread: the engine's publish is written, fsynced
    and acknowledged while the gateway's loop is stuck in a callback."""
    bus = LocalBus(tmp_path / "bus")
    await bus.start()
    other = OtherLoop()
    owner = asyncio.get_running_loop()
    seen: dict[str, Any] = {}
    topic = "ocpp.commands.set_charging_profile"

    def block_owner() -> None:
        seen["published"] = other.run(bus.publish(topic, "S1", b'{"kw": 3}'))
        sub = other.run(_subscribe_here(bus, topic))
        seen["read"] = other.run(sub.batch(timeout=0))

    try:
        owner.call_soon(block_owner)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert "published" in seen  # returned (None) while this loop was blocked
        assert [(r.key, r.value) for r in seen["read"]] == [("S1", b'{"kw": 3}')]
        await bus.stop()
        again = LocalBus(tmp_path / "bus")
        await again.start()
        sub = again.subscribe([topic])
        assert [r.key for r in await sub.batch(timeout=0)] == ["S1"]  # durable
        await again.stop()
    finally:
        other.close()


async def _subscribe_here(bus: LocalBus, topic: str) -> Any:
    return bus.subscribe([topic], from_beginning=True)
