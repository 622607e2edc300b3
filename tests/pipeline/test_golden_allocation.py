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
        # Baseline at start 16 kW; reduce by 6 kW -> cap 10 kW.
        await h.signal("sig1", "Z1", start=0, end=600, target_reduction_kw=6.0)
        await h.tick(1)
        # No floors (min_active 0): A gets 10 * 12/16 = 7.5, B gets 10 * 4/16 = 2.5.
        assert h.targets() == {"A": 7.5, "B": 2.5}
        a = h.commands["A"]
        assert a["signal_id"] == "sig1"
        assert a["station_shed_kw"] == 4.5
        assert a["dr_end_ts"] == "2026-01-05T12:10:00Z"
        assert a["priority"] == 2
