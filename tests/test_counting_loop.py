"""Counting right, end to end (issue 12): what the zone draws after a gateway restart.

Real ocpp-library chargers (one 2.0.1 DC station, one 1.6 AC station) over websockets, a
gateway that is stopped and replaced by a new one on the same in-process bus, and the
embedded engine (the migrations compiled on a real PostgreSQL, wall clock) reading the
zone's load the way the allocation does. Before the fix the 2.0.1 station's
TransactionEvents without ``evse`` went to connector 0 after the restart while EVSE 1's
sample was still fresh: 146.6 kW for 73.3 kW real.

Hand-computed: 73.3 (DC, EVSE 1) + 11.0 (AC, connector 2) = 84.3 kW; after the AC stop
(sent twice) 73.3; after the DC end, and a replayed event of it, 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from ocpp.v16 import call as call16

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import LocalBus
from pipeline.contracts import StationZone, encode
from pipeline.engine import Engine, apply_migrations
from tests.ocpp_gateway.chargers import charger, now_iso
from tests.ocpp_gateway.test_sessions import event, kw, sample16

pytestmark = pytest.mark.timeout(120)

CONFIG = GatewayConfig(port=0, allow_unknown_stations=True, ack_timeout=2.0)


class Loop:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.bus = LocalBus()
        self.engine = Engine(dsn, self.bus)
        self.gateway: Gateway | None = None

    async def restart_gateway(self) -> Gateway:
        if self.gateway is not None:
            await self.gateway.stop()
        self.gateway = Gateway(self.bus, CONFIG)
        await self.gateway.start()
        return self.gateway

    async def zone(self) -> tuple[float, list[tuple[str, int, float]]]:
        """Tick once; the zone's load and each counted connector (station, id, kW)."""
        await self.engine.run_tick()
        with psycopg.connect(self.dsn) as conn:
            (load,) = conn.execute("SELECT load_kw FROM zone_load WHERE zone_id = 'Z'").fetchone()
            rows = conn.execute(
                "SELECT station_id, connector_id, power_kw FROM connector_latest "
                "ORDER BY station_id, connector_id"
            ).fetchall()
        return round(load, 3), [(s, c, round(p, 3)) for s, c, p in rows]


@pytest.fixture
async def loop(postgres: str) -> AsyncIterator[Loop]:
    apply_migrations(postgres)
    loop = Loop(postgres)
    await loop.bus.start()
    for station, max_kw in (("DC", 150.0), ("AC", 22.0)):
        zone = StationZone(
            station_id=station, zone_id="Z", max_station_kw=max_kw, contract_max_kw=max_kw
        )
        await loop.bus.publish(topics.STATION_ZONES, station, encode(zone))
    await loop.engine.start(loop=False)
    try:
        yield loop
    finally:
        if loop.gateway is not None:
            await loop.gateway.stop()
        await loop.engine.stop()
        await loop.bus.stop()


async def test_a_restart_counts_each_connector_once(loop: Loop) -> None:
    gw = await loop.restart_gateway()
    async with charger(gw.port, "DC", "2.0.1") as dc, charger(gw.port, "AC") as ac:
        await dc.call(event("Started", 0, "dc-1", 1, kw(73.3)))
        start = await ac.call(
            call16.StartTransaction(connector_id=2, id_tag="T", meter_start=0, timestamp=now_iso())
        )
        await ac.call(call16.MeterValues(connector_id=2, meter_value=[sample16(11000)]))
    assert await loop.zone() == (84.3, [("AC", 2, 11.0), ("DC", 1, 73.3)])

    gw = await loop.restart_gateway()
    async with charger(gw.port, "DC", "2.0.1") as dc, charger(gw.port, "AC") as ac:
        await dc.call(event("Updated", 1, "dc-1", None, kw(73.3)))
        assert await loop.zone() == (84.3, [("AC", 2, 11.0), ("DC", 1, 73.3)])  # not 157.6
        stop = call16.StopTransaction(
            meter_stop=4000, timestamp=now_iso(), transaction_id=start.transaction_id,
            transaction_data=[sample16(11000)],
        )  # fmt: skip
        await ac.call(stop)
        await ac.call(stop)  # repeated: not counted again
        assert await loop.zone() == (73.3, [("AC", 2, 0.0), ("DC", 1, 73.3)])
        await dc.call(event("Ended", 2, "dc-1", None))
        await dc.call(event("Updated", 3, "dc-1", None, kw(73.3)))  # replayed after its end
        assert await loop.zone() == (0.0, [("AC", 2, 0.0), ("DC", 1, 0.0)])
    with psycopg.connect(loop.dsn) as conn:
        active = dict(conn.execute("SELECT station_id, active_sessions FROM station_load"))
    assert active == {"AC": 0, "DC": 0}  # ended sessions are not active
