"""OpenADR 3 VEN against the in-test 3.0.1 VTN (``oa3_vtn.Vtn3``, a test peer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dr_bridge.config import DEFAULT_SIMPLE_LEVELS, OpenADR3Settings
from dr_bridge.errors import VtnError
from dr_bridge.intake import Intake
from dr_bridge.oadr3_map import parse_iso_duration
from dr_bridge.openadr3 import OpenADR3Ven
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore
from dr_bridge.zones import ZoneDirectory
from tests.dr_bridge.conftest import RecordingBus, add_stations
from tests.dr_bridge.oa3_vtn import Vtn3

START = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def capacity_event(event_id: str, kw: float, duration: str = "PT1H", **over: object) -> dict:
    ev = {
        "id": event_id,
        "eventName": f"cap {event_id}",
        "priority": 0,
        "targets": [{"type": "GROUP", "values": ["zone-a"]}],
        "payloadDescriptors": [
            {
                "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                "payloadType": "IMPORT_CAPACITY_LIMIT",
                "units": "KW",
            }
        ],
        "intervalPeriod": {"start": z(START), "duration": duration},
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [kw]}]}],
    }
    ev.update(over)
    return ev


class Ven3Stack:
    def __init__(self, bus: RecordingBus, vtn: Vtn3, data_dir: Path, secret: str) -> None:
        self.bus, self.vtn, self.data_dir, self.secret = bus, vtn, data_dir, secret
        self.parts: list = []

    async def start(self, page_size: int = 50) -> OpenADR3Ven:
        store = RevisionStore(self.data_dir)
        zones = ZoneDirectory(self.bus)
        await zones.start()
        ven = OpenADR3Ven(
            OpenADR3Settings(
                vtn_url="http://vtn3",
                client_id="ven-client",
                client_secret=self.secret,
                page_size=page_size,
                ven_name="gridctl-ven",
            ),
            Intake(store, Publisher(self.bus, store)),
            zones,
            DEFAULT_SIMPLE_LEVELS,
            transport=httpx.ASGITransport(app=self.vtn.app),
        )
        self.parts.append((ven, zones, store))
        return ven

    async def stop(self) -> None:
        for ven, zones, store in self.parts:
            await ven.stop()
            await zones.stop()
            store.close()
        self.parts.clear()


@pytest.fixture
async def stack(bus: RecordingBus, tmp_path: Path) -> AsyncIterator[Ven3Stack]:
    await add_stations(bus, ("cs-1", "zone-a"), ("cs-3", "zone-b"))
    s = Ven3Stack(bus, Vtn3(), tmp_path / "bridge", "s3cret")
    yield s
    await s.stop()


def summary(records) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [
        (r.signal_id, r.modification, r.signal_type, r.zone_limit_kw, r.target_reduction_pct)
        for r in records
    ]


async def test_capacity_limit_change_restart_and_deletion(stack: Ven3Stack) -> None:
    stack.vtn.put(capacity_event("ev-1", 150))
    ven = await stack.start()
    assert await ven.poll_once() == 1
    [first] = stack.bus.published
    assert summary([first]) == [("oadr3:ev-1:zone-a:0", 0, "CURTAIL", 150.0, None)]
    assert (first.start_ts, first.end_ts, first.source, first.event_id) == (
        START,
        START + timedelta(hours=1),
        "openadr3",
        "openadr3:ev-1",
    )
    assert first.event_priority == 0  # the VTN's own number, kept

    # Same event again: nothing new.
    assert await ven.poll_once() == 0

    # Changed (new modificationDateTime): revision 1 replaces it.
    stack.vtn.put(capacity_event("ev-1", 90))
    assert await ven.poll_once() == 1
    assert summary(stack.bus.published[1:]) == [("oadr3:ev-1:zone-a:0", 1, "CURTAIL", 90.0, None)]

    # Restart: new VEN state, same data dir, nothing republished.
    await stack.stop()
    ven = await stack.start()
    assert await ven.poll_once() == 0

    # Deleted on the VTN -> RESTORE.
    del stack.vtn.events["ev-1"]
    assert await ven.poll_once() == 1
    assert summary(stack.bus.published[2:]) == [("oadr3:ev-1:zone-a:0", 2, "RESTORE", None, None)]
    assert await ven.poll_once() == 0
    assert len(stack.bus.published) == 3


async def test_zero_length_is_a_cancellation(stack: Ven3Stack) -> None:
    stack.vtn.put(capacity_event("ev-2", 100))
    ven = await stack.start()
    await ven.poll_once()
    stack.vtn.put(capacity_event("ev-2", 100, duration="PT0S"))
    assert await ven.poll_once() == 1
    assert stack.bus.published[-1].signal_type == "RESTORE"


async def test_content_hash_when_no_modification_time(stack: Ven3Stack) -> None:
    stack.vtn.put(capacity_event("ev-3", 70), touch=False)
    ven = await stack.start()
    assert await ven.poll_once() == 1
    assert await ven.poll_once() == 0
    stack.vtn.put(capacity_event("ev-3", 60), touch=False)
    assert await ven.poll_once() == 1
    assert stack.bus.published[-1].zone_limit_kw == 60.0


async def test_paging_simple_levels_and_targets(stack: Ven3Stack) -> None:
    for i in range(7):
        stack.vtn.put(
            {
                "id": f"ev-s{i}",
                "targets": [{"type": "RESOURCE_NAME", "values": ["cs-3"]}],
                "intervalPeriod": {"start": z(START), "duration": "PT30M"},
                "intervals": [
                    {"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]},
                    {"id": 1, "payloads": [{"type": "SIMPLE", "values": [3]}]},
                ],
            }
        )
    ven = await stack.start(page_size=3)
    assert await ven.poll_once() == 14
    assert stack.vtn.pages_served == 3
    ev0 = sorted(
        (r for r in stack.bus.published if r.signal_id.startswith("oadr3:ev-s0:")),
        key=lambda r: r.start_ts,
    )
    assert [(r.zone_id, r.signal_type, r.target_reduction_pct, r.start_ts) for r in ev0] == [
        ("zone-b", "CURTAIL", 20.0, START),
        ("zone-b", "SHED", 100.0, START + timedelta(minutes=30)),
    ]


async def test_ven_name_targets_every_zone_and_unknown_targets_nothing(stack: Ven3Stack) -> None:
    stack.vtn.put(
        capacity_event("ev-v", 40, targets=[{"type": "VEN_NAME", "values": ["gridctl-ven"]}])
    )
    stack.vtn.put(capacity_event("ev-x", 40, targets=[{"type": "GROUP", "values": ["nowhere"]}]))
    ven = await stack.start()
    await ven.poll_once()
    assert sorted(r.signal_id for r in stack.bus.published) == [
        "oadr3:ev-v:zone-a:0",
        "oadr3:ev-v:zone-b:0",
    ]


async def test_bad_client_secret_is_a_vtn_error_and_publishes_nothing(
    bus: RecordingBus, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    s = Ven3Stack(bus, Vtn3(), tmp_path / "b", "wrong")
    s.vtn.put(capacity_event("ev-1", 10))
    ven = await s.start()
    with pytest.raises(VtnError):
        await ven.poll_once()
    assert bus.published == []
    await s.stop()


def test_iso_durations() -> None:
    assert parse_iso_duration("PT15M") == timedelta(minutes=15)
    assert parse_iso_duration("P1DT2H30S") == timedelta(days=1, hours=2, seconds=30)
    assert parse_iso_duration("P9999Y") == timedelta(days=36600)
    with pytest.raises(ValueError):
        parse_iso_duration("15 minutes")


async def test_bridge_runs_the_openadr3_ven_from_settings(
    bus: RecordingBus, tmp_path: Path
) -> None:
    from dr_bridge import Bridge, BridgeSettings

    await add_stations(bus, ("cs-1", "zone-a"))
    vtn = Vtn3()
    vtn.put(capacity_event("ev-b", 75))
    settings = BridgeSettings(
        data_dir=tmp_path,
        tokens=("t",),
        openadr3_vtn_url="http://vtn3",
        openadr3_client_id="ven-client",
        openadr3_client_secret="s3cret",
        openadr3_poll_interval_s=0.05,
    )
    async with Bridge(
        bus, settings, serve_api=False, openadr3_transport=httpx.ASGITransport(app=vtn.app)
    ):
        async with asyncio.timeout(20):  # liveness bound for the background poll loop
            while not bus.published:
                await asyncio.sleep(0.02)
    assert summary(bus.published) == [("oadr3:ev-b:zone-a:0", 0, "CURTAIL", 75.0, None)]
    assert vtn.token_requests == 1  # the token is cached across polls
