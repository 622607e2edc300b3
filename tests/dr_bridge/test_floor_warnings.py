"""The 201's floor warning counts the floors the pipeline holds, read from its views.

A real pipeline (migrations on a real PostgreSQL, engine on a virtual clock: the golden
harness) and a real bridge on the same bus, its API reading the engine's views. Stations
are single-phase 230 V: minimum 6 A x 230 V = 1.38 kW, rounded up to the step: 1.4 kW.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dr_bridge import Bridge, BridgeSettings
from dr_bridge.views import ViewReader
from tests.dr_bridge.conftest import TOKEN
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(180)

SQL = Path(__file__).resolve().parents[2] / "sql"
IDLE = [f"I{n}" for n in range(10)]


async def _zone_of_ten_idle_and_two_charging(h: Harness) -> None:
    for sid in ["A", "B", *IDLE]:
        await h.station(sid, "Z1", phases=1)
    for t in (-15, -5):  # A draws 6 kW, B 3 kW: two charging sessions
        await h.sample("A", 1, 6.0, t)
        await h.sample("B", 1, 3.0, t)
    for sid in IDLE:  # connected, their one connector Available, no MeterValues
        await h.status(sid, "Connected", -10)
        await h.status(sid, "StatusNotification", -10, connector=1, status="Available")
    await h.tick(0)


@pytest.fixture
async def harness(postgres: str) -> AsyncIterator[Harness]:
    async with Harness(postgres) as h:
        yield h


@pytest.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    views = ViewReader(harness.dsn, SQL)
    settings = BridgeSettings(data_dir=tmp_path / "bridge", tokens=(TOKEN,))
    bridge = Bridge(harness.bus, settings, serve_api=False, views=views)
    await bridge.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bridge.app),
        base_url="http://bridge",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client
    await bridge.stop()
    await views.close()


def _limit(signal_id: str, kw: float) -> dict[str, object]:
    return {"signal_id": signal_id, "zone_id": "Z1", "zone_limit_kw": kw, "duration": "15m"}


async def test_idle_stations_hold_no_floor_in_the_warning(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    await _zone_of_ten_idle_and_two_charging(harness)
    # Held: A and B at 1.4 kW each = 2.8 kW; the ten idle ones at 0. A cap of 8 kW is
    # feasible (counting every station it would need 12 x 1.4 = 16.8 kW).
    ok = await api.post("/v1/signals", json=_limit("fits", 8.0))
    assert ok.status_code == 201
    assert ok.json()["warnings"] == []
    # 2.5 kW is below the charging sessions' 2.8 kW: 0.3 kW short.
    r = await api.post("/v1/signals", json=_limit("short", 2.5))
    (warning,) = r.json()["warnings"]
    assert warning.startswith(
        "infeasible: 2 of the zone's 12 stations are held at their minimum current "
        "(2 charging, 0 with a vehicle plugged in, 0 without fresh load or status), "
        "2.8 kW, 0.3 kW above the 2.5 kW limit"
    )


async def test_the_warning_agrees_with_what_the_pipeline_then_holds(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    await _zone_of_ten_idle_and_two_charging(harness)
    await harness.status("I0", "StatusNotification", 1, connector=1, status="Preparing")
    await harness.tick(2)
    # A vehicle on I0: 3 x 1.4 = 4.2 kW held, 0.2 kW above a 4 kW limit.
    r = await api.post("/v1/signals", json=_limit("sig", 4.0))
    (warning,) = r.json()["warnings"]
    assert "(2 charging, 1 with a vehicle plugged in, 0 without" in warning
    assert "4.2 kW, 0.2 kW above the 4 kW limit" in warning
    # The engine evaluates the same limit (the bridge's signal starts now, in real time,
    # long after the harness's virtual clock: this one starts on that clock) and holds the
    # same floors, station by station, and finds the same shortfall.
    await harness.signal("on-clock", "Z1", start=2, end=600, zone_limit_kw=4.0)
    await harness.tick(3)
    floors = "SELECT station_id, ROUND(floor_kw::NUMERIC, 3)::FLOAT FROM {} WHERE floor_kw > 0"
    assert sorted(harness.query(floors.format("dr_station_bounds"))) == [
        ("A", 1.4),
        ("B", 1.4),
        ("I0", 1.4),
    ]
    assert sorted(harness.query(floors.format("station_curtail_floors"))) == sorted(
        harness.query(floors.format("dr_station_bounds"))
    )
    assert harness.query(
        "SELECT state, shortfall_kw FROM dr_signal_states WHERE signal_id = 'on-clock'"
    ) == [("infeasible", 0.2)]


async def test_stations_of_unknown_status_are_held(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    await _zone_of_ten_idle_and_two_charging(harness)
    await harness.station("N", "Z1", phases=1)  # configured, never reported: held at 1.4
    await harness.tick(1)
    r = await api.post("/v1/signals", json=_limit("sig", 4.0))
    (warning,) = r.json()["warnings"]
    assert "2 charging, 0 with a vehicle plugged in, 1 without fresh load or status" in warning
    assert "4.2 kW, 0.2 kW above the 4 kW limit" in warning
