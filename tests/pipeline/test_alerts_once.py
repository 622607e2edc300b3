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


def alerts(h: Harness, alert_type: str) -> list[dict]:
    return [a for a in h.alerts if a["alert_type"] == alert_type]


async def test_revisions_during_an_infeasible_episode_add_no_alert(postgres: str) -> None:
    async with Harness(postgres) as h:
        for sid in ("A", "B", "C"):  # single-phase: minimum 6 A x 230 V -> 1.4 kW
            await h.station(sid, "Z1", phases=1)
            await h.sample(sid, 1, 5.0, -5)
        await h.signal("tight", "Z1", start=0, end=600, zone_limit_kw=4.0)
        await h.tick(1)
        await h.tick(31)  # 30 s (enforce_bound_seconds) after it applies: an episode opens
        await h.tick(32)  # ... and comes back frozen through pipeline.dr_alert_episodes
        first = alerts(h, "signal_infeasible")
        assert [(a["observed_kw"], a["limit_kw"], a["detected_at"]) for a in first] == [
            (4.2, 4.0, "2026-01-05T12:00:30Z")  # three 1.4 kW minima > 4.0 kW
        ]
        # Revisions heard later, same amount then a lower one, with fresh samples between:
        # still infeasible, the same episode: no new alert, the frozen one unchanged.
        for t, mod, limit in ((40, 1, 4.0), (70, 2, 3.5)):
            await h.signal("tight", "Z1", start=0, end=600, modification=mod,
                           received=t, zone_limit_kw=limit)  # fmt: skip
            for step in (1, 11, 21, 31, 41):
                for sid in ("A", "B", "C"):
                    await h.sample(sid, 1, 1.4, t + step - 1)
                await h.tick(t + step)
        assert alerts(h, "signal_infeasible") == first
        # Enforced for a while (the episode ends), then infeasible again: a new episode,
        # 30 s after the revision that made it so.
        await h.signal("tight", "Z1", start=0, end=600, modification=3, received=120,
                       zone_limit_kw=10.0)  # fmt: skip
        await h.tick(121)
        await h.tick(122)
        await h.signal("tight", "Z1", start=0, end=600, modification=4, received=130,
                       zone_limit_kw=4.0)  # fmt: skip
        for t in (131, 150, 161, 162):
            await h.tick(t)
        again = alerts(h, "signal_infeasible")
        assert [(a["limit_kw"], a["detected_at"]) for a in again] == [
            (4.0, "2026-01-05T12:00:30Z"),
            (4.0, "2026-01-05T12:02:40Z"),
        ]


async def test_retries_and_load_changes_of_an_uncontrollable_station_add_no_alert(
    postgres: str,
) -> None:
    async with Harness(postgres) as h:
        for sid in ("A", "B"):
            await h.station(sid, "Z1", phases=1)
            await h.sample(sid, 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=600, zone_limit_kw=12.0)
        await h.tick(1)
        # B answers NotSupported to every attempt and draws what it likes.
        for t, kw in ((2, 10.0), (20, 9.0), (40, 11.0)):
            await h.result("B", "sig", "NotSupported", t)
            await h.sample("A", 1, 2.0, t)
            await h.sample("B", 1, kw, t)
            await h.tick(t + 1)
            await h.tick(t + 2)
        got = alerts(h, "station_uncontrollable")
        assert [(a["station_id"], a["observed_kw"], a["detected_at"]) for a in got] == [
            ("B", 10.0, "2026-01-05T12:00:02Z")  # first detected at its first refusal
        ]
        # B accepts a retry (controllable again), later refuses again: a new episode.
        await h.result("B", "sig", "Accepted", 60, limit_kw=6.0)
        await h.tick(61)
        await h.result("B", "sig", "Rejected", 70)
        await h.tick(71)
        await h.tick(72)
        got = alerts(h, "station_uncontrollable")
        assert [(a["station_id"], a["detected_at"]) for a in got] == [
            ("B", "2026-01-05T12:00:02Z"),
            ("B", "2026-01-05T12:01:10Z"),
        ]
