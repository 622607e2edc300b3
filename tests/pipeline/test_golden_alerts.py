"""Golden alert scenarios: one alert per episode window, never one per tick."""

from __future__ import annotations

import pytest

from pipeline import topics
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(120)


async def test_overload_alert_once_per_window_not_per_tick(postgres: str) -> None:
    async with Harness(postgres, watermark_seconds="10") as h:
        await h.station("A", "Z1", max_kw=22.0, contract_kw=7.0)
        await h.station("B", "Z1", max_kw=22.0, contract_kw=7.0)
        # A draws 5 + 4 = 9 kW on two connectors (over its 7 kW contract) for two minutes;
        # B draws 6 kW (under). Samples every 5 s, a tick every 5 s.
        for t in range(0, 150, 5):
            if t < 120:
                await h.sample("A", 1, 5.0, t)
                await h.sample("A", 2, 4.0, t)
            await h.sample("B", 1, 6.0, t)
            await h.tick(t)
        overload = [a for a in h.alerts if a["topic"] == topics.ALERTS_OVERLOAD]
        # Windows [0,60) and [60,120) closed once the watermark (max event - 10 s) passed
        # their end: two alerts, each with the connectors summed (9 kW, not 9 x samples).
        assert [(a["station_id"], a["window_start"], a["observed_kw"]) for a in overload] == [
            ("A", "2026-01-05T12:00:00Z", 9.0),
            ("A", "2026-01-05T12:01:00Z", 9.0),
        ]
        assert overload[0]["alert_type"] == "station_over_contract"
        assert overload[0]["limit_kw"] == 7.0
        assert overload[0]["zone_id"] == "Z1"
        for t in range(150, 300, 5):  # many more ticks, nothing new
            await h.sample("B", 1, 6.0, t)
            await h.tick(t)
        assert len([a for a in h.alerts if a["topic"] == topics.ALERTS_OVERLOAD]) == 2


async def test_zone_above_cap_after_grace_and_low_ack_rate(postgres: str) -> None:
    async with Harness(postgres, cap_grace_seconds="120", ack_window_minutes="5") as h:
        await h.station("A", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=3600, zone_limit_kw=5.0)
        # The charger ignores its limit and keeps drawing 10 kW.
        for t in range(0, 400, 10):
            await h.sample("A", 1, 10.0, t)
            await h.result("A", "sig", "Accepted" if t % 20 == 0 else "Rejected", t)
            await h.tick(t + 1)
        await h.tick(400)
        dr = [a for a in h.alerts if a["topic"] == topics.ALERTS_DR]
        over = [a for a in dr if a["alert_type"] == "zone_over_cap"]
        # Grace 120 s: minutes starting at 120, 180, 240, 300 (closed by 370 s) alert,
        # each once; the first two minutes are within the grace period.
        assert [a["window_start"][11:19] for a in over] == [
            "12:02:00",
            "12:03:00",
            "12:04:00",
            "12:05:00",
        ]
        assert over[0]["observed_kw"] == 10.0
        assert over[0]["limit_kw"] == 5.0
        assert over[0]["signal_id"] == "sig"
        # Acknowledgements: half of the results in [0, 300) were Accepted -> 50 % < 90 %;
        # the window closed once results stamped after 310 s moved the watermark past 300 s.
        # The window [300, 600) is still open: no alert for it yet.
        acks = [a for a in dr if a["alert_type"] == "ack_rate_low"]
        assert [(a["signal_id"], a["ack_rate"], a["zone_id"]) for a in acks] == [("sig", 0.5, "Z1")]
