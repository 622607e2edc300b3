"""Fixtures of the DR bridge tests: a durable LocalBus, a bridge, an httpx client on its app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dr_bridge import Bridge, BridgeSettings
from pipeline import topics
from pipeline.bus import Bus, LocalBus, PublishError
from pipeline.contracts import DemandResponseSignal, StationZone, decode, encode
from tests.dr_bridge.oa2_vtn import vtn  # noqa: F401  (fixture)

TOKEN = "test-token-0123456789"


class RecordingBus(LocalBus):
    """A real LocalBus that also keeps every DR record it confirmed, in order.

    The upsert topic keeps only the latest record per key, so counting what was
    published ("no duplicates") needs this log. ``fail_next`` makes the next publishes
    fail with PublishError (fault injection for the retry path).
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.published: list[DemandResponseSignal] = []
        self.fail_next = 0

    async def publish_many(self, messages, *, timeout=None):  # type: ignore[no-untyped-def]
        if self.fail_next > 0 and any(m.topic == topics.DEMAND_RESPONSE for m in messages):
            self.fail_next -= 1
            raise PublishError("injected failure")
        await super().publish_many(messages, timeout=timeout)
        for m in messages:
            if m.topic == topics.DEMAND_RESPONSE and m.value is not None:
                self.published.append(decode(DemandResponseSignal, m.value))


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[RecordingBus]:
    bus = RecordingBus(tmp_path / "bus")
    await bus.start()
    yield bus
    await bus.stop()


async def add_stations(bus: Bus, *stations: tuple[str, str]) -> None:
    """Publish stations (station_id, zone_id) to config.station_zones."""
    for station_id, zone_id in stations:
        z = StationZone(
            station_id=station_id, zone_id=zone_id, max_station_kw=22, contract_max_kw=22
        )
        await bus.publish(topics.STATION_ZONES, station_id, encode(z))


@pytest.fixture
async def bridge(bus: RecordingBus, tmp_path: Path) -> AsyncIterator[Bridge]:
    await add_stations(bus, ("cs-1", "zone-a"), ("cs-2", "zone-a"), ("cs-3", "zone-b"))
    settings = BridgeSettings(data_dir=tmp_path / "data", tokens=(TOKEN,))
    b = Bridge(bus, settings, serve_api=False)
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def client(bridge: Bridge) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bridge.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://bridge",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as c:
        yield c


async def dr_records(bus: Bus) -> list[DemandResponseSignal]:
    """Every record on grid.demand_response now (latest per signal, upsert topic)."""
    sub = bus.subscribe([topics.DEMAND_RESPONSE], from_beginning=True)
    try:
        records = await sub.batch(max_records=100_000, timeout=0)
    finally:
        await sub.close()
    return [decode(DemandResponseSignal, r.value) for r in records if r.value is not None]


def field_names(response: httpx.Response) -> set[str]:
    return {d["field"] for d in json.loads(response.text)["detail"]}
