"""Golden scenarios of the control law with hand-computed numbers (architecture.md §control).

Each test feeds contract records through a LocalBus into the engine running the compiled
migrations on a real PostgreSQL, on a virtual clock, and checks the commands it emits.
"""

from __future__ import annotations

import pytest

from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(120)


async def test_proportional_shares_and_many_samples_per_connector(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        # A: two connectors at 6 kW each, B: one connector at 4 kW. Many samples each:
        # the latest sample of a connector counts once, however many arrive.
        for t in range(-100, 1, 10):
            await h.sample("A", 1, 6.0, t)
            await h.sample("A", 2, 6.0, t)
            await h.sample("B", 1, 4.0, t)
        # Baseline: the connectors' averages over the minute before start, 16 kW (the
        # minute closes once samples stamped 10 s after its end arrive); reduce by 6 kW
        # -> cap 10 kW.
        await h.signal("sig1", "Z1", start=0, end=600, target_reduction_kw=6.0)
        await h.tick(1)
        assert h.commands == {}  # the baseline minute has not closed yet
        await h.sample("A", 1, 6.0, 10)
        await h.sample("A", 2, 6.0, 10)
        await h.sample("B", 1, 4.0, 10)
        await h.tick(11)
        # No floors (min_active 0): A gets 10 * 12/16 = 7.5, B gets 10 * 4/16 = 2.5.
        assert h.targets() == {"A": 7.5, "B": 2.5}
        a = h.commands["A"]
        assert a["signal_id"] == "sig1"
        assert a["station_shed_kw"] == 4.5
        assert a["dr_end_ts"] == "2026-01-05T12:10:00Z"
        assert a["priority"] == 2


async def test_clamps_to_station_max_and_contract(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1", max_kw=22.0, contract_kw=7.0)
        await h.station("B", "Z1", max_kw=5.0, contract_kw=22.0)
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("lim", "Z1", start=0, end=600, zone_limit_kw=30.0)
        await h.tick(1)
        # Shares would be 15 each; A is capped by its contract, B by its hardware.
        assert h.targets() == {"A": 7.0, "B": 5.0}


async def test_curtail_keeps_floors_shed_goes_to_zero(postgres: str) -> None:
    async with Harness(postgres) as h:
        for zone in ("ZC", "ZS"):
            await h.station(f"{zone}-A", zone, min_active_kw=3.0)
            await h.station(f"{zone}-B", zone, min_active_kw=3.0)
            await h.sample(f"{zone}-A", 1, 1.0, -5)
            await h.sample(f"{zone}-B", 1, 9.0, -5)
        await h.signal("c", "ZC", "CURTAIL", start=0, end=600, zone_limit_kw=8.0)
        await h.signal("s", "ZS", "SHED", start=0, end=600, zone_limit_kw=8.0)
        await h.tick(1)
        # CURTAIL: floors 3 + 3 first, the 2 kW left shared by load (0.2 / 1.8):
        # A 3.2 -> quantised 3.0, B 4.8 -> 4.5. SHED: no floors, 0.8 -> 0.5 and 7.2 -> 7.0.
        assert h.targets() == {"ZC-A": 3.0, "ZC-B": 4.5, "ZS-A": 0.5, "ZS-B": 7.0}


async def test_zero_limit_curtail_holds_floors_shed_zero(postgres: str) -> None:
    async with Harness(postgres) as h:
        for zone in ("ZC", "ZS"):
            await h.station(f"{zone}-A", zone, min_active_kw=2.0)
            await h.sample(f"{zone}-A", 1, 5.0, -5)
            await h.sample(f"{zone}-A", 1, 5.0, 10)
        await h.signal("c", "ZC", "CURTAIL", start=0, end=600, zone_limit_kw=0.0)
        await h.signal("s", "ZS", "SHED", start=0, end=600, target_reduction_pct=100.0)
        await h.tick(11)
        assert h.targets() == {"ZC-A": 2.0, "ZS-A": 0.0}


async def test_idle_and_stale_stations_reserve_their_floor(postgres: str) -> None:
    async with Harness(postgres, freshness_seconds="120") as h:
        await h.station("A", "Z1", min_active_kw=2.0)
        await h.station("IDLE", "Z1", min_active_kw=2.0)  # never reported
        await h.station("STALE", "Z1", min_active_kw=2.0)
        await h.sample("STALE", 1, 20.0, -300)  # older than the freshness bound at start
        await h.sample("A", 1, 10.0, -5)
        await h.sample("A", 1, 10.0, 10)
        await h.signal("sig", "Z1", start=0, end=600, target_reduction_pct=50.0)
        await h.tick(11)
        # Baseline counts only fresh samples: 10 kW (not 30) -> cap 5. IDLE and STALE are
        # held at their floor (2 each, reserved); A gets 2 + (5 - 6 -> 0) = its floor 2.
        assert h.targets() == {"A": 2.0, "IDLE": 2.0, "STALE": 2.0}
        assert h.commands["A"]["station_shed_kw"] == 8.0


async def test_baseline_frozen_while_chargers_comply(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        for t in (-20, -10, 0, 10):
            await h.sample("A", 1, 10.0, t)
            await h.sample("B", 1, 10.0, t)
        await h.signal("sig", "Z1", start=0, end=3600, target_reduction_kw=5.0)
        await h.tick(11)
        assert h.targets() == {"A": 7.5, "B": 7.5}
        # Ten virtual minutes of compliant chargers reporting the reduced load: the cap
        # stays 20 - 5 = 15 (a baseline from current load would cut 5 kW every cycle).
        for t in range(20, 601, 10):
            await h.sample("A", 1, 7.5, t)
            await h.sample("B", 1, 7.5, t)
            await h.tick(t + 1)
        assert h.targets() == {"A": 7.5, "B": 7.5}
        assert h.query("SELECT baseline_kw, cap_kw FROM dr_zone_caps") == [(20.0, 15.0)]
        assert len(h.command_updates) == 2  # sent once, never re-sent


async def test_modification_changes_cap_and_stale_revision_ignored(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=3600, target_reduction_kw=4.0)
        await h.sample("A", 1, 8.0, 10)
        await h.sample("B", 1, 8.0, 10)
        await h.tick(11)
        assert h.targets() == {"A": 8.0, "B": 8.0}
        await h.signal("sig", "Z1", start=0, end=3600, modification=2, target_reduction_kw=10.0)
        await h.tick(16)
        # Same frozen baseline (20 kW), new reduction: cap 10.
        assert h.targets() == {"A": 5.0, "B": 5.0}
        # An older revision arriving late does not win over modification 2.
        await h.signal("sig", "Z1", start=0, end=3600, modification=1, target_reduction_kw=1.0)
        await h.tick(17)
        assert h.targets() == {"A": 5.0, "B": 5.0}


async def test_restore_and_natural_end_give_tombstones(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z2")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("r", "Z1", start=0, end=3600, zone_limit_kw=5.0)
        await h.signal("e", "Z2", start=0, end=60, zone_limit_kw=4.0)
        await h.tick(1)
        assert h.targets() == {"A": 5.0, "B": 4.0}
        await h.signal("r", "Z1", "RESTORE", start=0, end=3600, modification=1)
        await h.tick(30)
        assert h.tombstones == [(30, "A")]
        await h.tick(59)
        assert h.targets() == {"B": 4.0}
        await h.tick(60)  # end_ts is exclusive: the signal is over at 60 s
        assert h.tombstones == [(30, "A"), (60, "B")]
        assert h.commands == {}


async def test_lowest_cap_wins_across_signals(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.signal("econ", "Z1", start=0, end=600, priority=2, zone_limit_kw=6.0)
        await h.signal("emerg", "Z1", "SHED", start=0, end=300, priority=1, zone_limit_kw=3.0)
        await h.tick(1)
        assert h.targets() == {"A": 3.0}
        assert h.commands["A"]["signal_id"] == "emerg"
        assert h.commands["A"]["priority"] == 1
        await h.sample("A", 1, 3.0, 300)
        await h.tick(301)  # the emergency ended: the economic signal's cap applies again
        assert h.targets() == {"A": 6.0}
        assert h.commands["A"]["signal_id"] == "econ"
