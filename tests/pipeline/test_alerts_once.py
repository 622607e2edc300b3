"""Alerts once per episode window whatever revisions arrive (docs/engines.md)."""

from __future__ import annotations

import pytest

from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(180)


async def test_same_amount_revision_during_an_over_cap_episode_adds_no_alert(
    postgres: str,
) -> None:
    async with Harness(postgres, cap_grace_seconds="0") as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        await h.signal("sig", "Z1", start=0, end=3600, zone_limit_kw=8.0)
        for t in range(0, 300, 10):
            # chargers that do not comply: 10 + 6 kW against a cap of 8 kW
            await h.sample("A", 1, 10.0, t)
            await h.sample("B", 1, 6.0, t)
            if t in (130, 200):  # revisions with the same amounts, mid-episode
                mod = 1 if t == 130 else 2
                await h.signal("sig", "Z1", start=0, end=3600, modification=mod, zone_limit_kw=8.0)
            await h.tick(t + 1)
        over = [a for a in h.alerts if a["alert_type"] == "zone_over_cap"]
        # watermark at 290 - 10 s: the minutes ending 60, 120, 180 and 240 s have closed;
        # each over the cap (16 kW > 8 + 0.5 kW tolerance), each alerted exactly once.
        assert sorted(a["window_end"] for a in over) == [
            "2026-01-05T12:01:00Z",
            "2026-01-05T12:02:00Z",
            "2026-01-05T12:03:00Z",
            "2026-01-05T12:04:00Z",
        ]
        assert {(a["observed_kw"], a["limit_kw"]) for a in over} == {(16.0, 8.0)}
