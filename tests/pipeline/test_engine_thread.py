"""The engine on its own thread (``gridctl run``'s layout): its PostgreSQL work goes on
while the loop that carries the gateway and the bus is blocked, and it still ingests from
and rings on that loop's bus. Found by bench/dr_latency.py: on a shared loop, a 5,000-charger
event's tick waited 3.1 s for the gateway to yield around a millisecond statement."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from pipeline import metrics_names as names
from pipeline.engine.thread import EngineThread
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(120)


async def test_the_engine_evaluates_views_while_the_bus_loop_is_blocked(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.engine.stop()
        owner = asyncio.get_running_loop()
        engine = EngineThread(postgres, h.bus, tick=3600.0)
        blocked, evaluated = threading.Event(), threading.Event()
        seen: dict[str, Any] = {}

        def block_owner() -> None:
            # A gateway callback that does not yield: nothing else runs on this loop.
            seen["owner_thread"] = threading.get_ident()
            blocked.set()
            seen["evaluated_while_blocked"] = evaluated.wait(timeout=60)

        await engine.start()
        assert engine.engine is not None and engine.loop is not owner
        original = engine.engine._materialise

        async def materialise(cur: Any, now: datetime) -> None:
            if "engine_thread" not in seen:
                seen["engine_thread"] = threading.get_ident()
                owner.call_soon_threadsafe(block_owner)
                seen["owner_blocked"] = blocked.wait(timeout=60)
                await original(cur, now)  # PostgreSQL, with the owner's loop still blocked
                evaluated.set()
                return
            await original(cur, now)

        engine.engine._materialise = materialise  # type: ignore[method-assign]
        try:
            # The start-up tick has run already; the doorbell starts the next one.
            await h.station("A", "Z1")
            await h.signal("sig", "Z1", start=0, end=600, zone_limit_kw=8.0)
            deadline = time.monotonic() + 60
            found = None
            while found is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                with psycopg.connect(postgres) as conn:
                    found = conn.execute(
                        "SELECT zone_id FROM dr_signals WHERE signal_id = 'sig'"
                    ).fetchone()
            assert found == ("Z1",)  # the signal was ingested
            # The doorbell's tick completes (commit and lag, in one hop, answered too).
            while engine.ticks < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert engine.ticks >= 2
            assert REGISTRY.get_sample_value(names.ENGINE_LAG_RECORDS) == 0  # all ingested
            assert seen["owner_blocked"] is True
            assert seen["evaluated_while_blocked"] is True
            assert seen["engine_thread"] != seen["owner_thread"]
        finally:
            await engine.stop()
        assert engine.loop is None
