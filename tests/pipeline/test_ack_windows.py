"""Acknowledgement windows close on time without later command results: the gateway's
clock records (ocpp_gateway.clock) move the command-result watermark."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ocpp_gateway.clock import CLOCK_STATION, clock_record
from pipeline import topics
from pipeline.contracts import encode
from tests.pipeline.golden.harness import T0, Harness

pytestmark = pytest.mark.timeout(120)


async def _clock(h: Harness, t: float) -> None:
    record = clock_record(T0 + timedelta(seconds=t))
    await h.bus.publish(topics.COMMAND_RESULTS, CLOCK_STATION, encode(record))


def _ack_alerts(h: Harness) -> list[tuple[str, float]]:
    return [(a["signal_id"], a["ack_rate"]) for a in h.alerts if a["alert_type"] == "ack_rate_low"]


async def test_last_window_closes_with_the_clock_alone(postgres: str) -> None:
    async with Harness(postgres) as h:  # ack windows of 5 min, watermark 10 s
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        await h.signal("sig", "Z1", start=0, end=3600, zone_limit_kw=8.0)
        await h.result("A", "sig", "Accepted", 20)
        await h.result("B", "sig", "Rejected", 21)
        await h.tick(30)
        # No more results. Without the clock the window [0, 300 s) stays open: nothing
        # moves the watermark past 300 s.
        await h.tick(400)
        assert _ack_alerts(h) == []
        # The gateway's clock every 5 s: at 310 s the watermark (310 - 10) passes 300 s.
        for t in range(305, 315, 5):
            await _clock(h, t)
        await h.tick(401)
        assert _ack_alerts(h) == [("sig", 0.5)]  # 1 of 2 accepted, below 0.9
        # and the clock itself is never counted as a result
        await h.tick(402)
        assert _ack_alerts(h) == [("sig", 0.5)]
