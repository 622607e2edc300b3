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
