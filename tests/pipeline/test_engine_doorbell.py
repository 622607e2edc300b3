"""A DR signal ends the engine's wait for its next tick (found by bench/dr_latency.py:
with a 1 s tick, waiting for the tick was up to 1 s of API -> charger latency)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from pipeline.engine import Engine
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(120)


async def test_a_dr_signal_is_ingested_without_waiting_for_the_next_tick(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.engine.stop()
        # On the timer alone this engine ticks once at start, then not for an hour.
        h.engine = Engine(postgres, h.bus, tick=3600.0)
        await h.engine.start()
        deadline = time.monotonic() + 30
        while h.engine.ticks < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert h.engine.ticks == 1
        await h.station("A", "Z1")
        await h.signal("sig", "Z1", start=0, end=600, zone_limit_kw=8.0)
        found = None
        while found is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            with psycopg.connect(postgres) as conn:
                found = conn.execute(
                    "SELECT zone_id FROM dr_signals WHERE signal_id = 'sig'"
                ).fetchone()
        assert found == ("Z1",)
        # The row is committed inside the doorbell's tick; the counter moves when it ends.
        while h.engine.ticks < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert h.engine.ticks >= 2


async def test_after_a_tick_that_sent_commands_the_engine_rests_a_whole_tick(
    postgres: str,
) -> None:
    """The gateway sends a tick's commands on the same cores; the next tick waits a whole
    tick (not the rest of one) so it does not take them from it (bench/dr_latency.py)."""
    async with Harness(postgres) as h:
        await h.engine.stop()
        h.engine = Engine(postgres, h.bus, tick=0.2, clock=h.clock)
        waits: list[tuple[float, bool]] = []
        wait_next = h.engine._wait_next

        async def spy(delay: float) -> None:  # a spy on the real engine's wait
            sent = h.query("SELECT count(*) FROM gridctl_engine.sink_state "
                           "WHERE sink = 'set_charging_profile_sink'")  # fmt: skip
            waits.append((delay, sent != [(0,)]))
            await wait_next(delay)

        h.engine._wait_next = spy  # type: ignore[method-assign]
        await h.station("A", "Z1", phases=1)
        await h.sample("A", 1, 10.0, -5)
        await h.engine.start()
        deadline = time.monotonic() + 30
        while len(waits) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await h.signal("sig", "Z1", "SHED", start=0, end=600, zone_limit_kw=8.0)
        while not any(commanded for _, commanded in waits) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        n = len(waits)
        while len(waits) < n + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await h.engine.stop()
        first = next(i for i, (_, commanded) in enumerate(waits) if commanded)
        assert waits[first][0] == 0.2  # the tick that sent the command: a whole tick
        assert all(delay < 0.2 for delay, _ in waits[:first])  # before: the rest of one
        assert all(delay < 0.2 for delay, _ in waits[first + 1 :])  # nothing new sent
