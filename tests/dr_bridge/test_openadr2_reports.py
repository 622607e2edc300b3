"""OpenADR 2.0b EiReport and EiOpt against a real openleadr VTN on loopback.

The VTN requests TELEMETRY_USAGE through its ``on_register_report`` handler and receives
oadrUpdateReport; the zone load comes from a fixed in-test reader (``FixedLoad``; the
end-to-end test in ``tests/test_openadr2_loop.py`` reads the engine's real ``zone_load``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dr_bridge.config import DEFAULT_SIMPLE_LEVELS, OpenADR2Settings
from dr_bridge.intake import Intake
from dr_bridge.openadr2 import OpenADR2Ven
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore
from dr_bridge.zones import ZoneDirectory
from pipeline import topics
from tests.dr_bridge.conftest import RecordingBus, add_stations
from tests.dr_bridge.oa2_vtn import VEN_ID, Vtn
from tests.dr_bridge.test_openadr3 import FixedLoad


class ReportSink:
    """The VTN side of TELEMETRY_USAGE: request every data point at 1 s, keep the values."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)
        self.offered: list[tuple[str, str, str | None, str | None]] = []

    def on_register_report(  # the compact signature openleadr recognises
        self,
        ven_id,
        resource_id,
        measurement,
        unit,
        scale,
        min_sampling_interval,
        max_sampling_interval,
    ):  # type: ignore[no-untyped-def]
        self.offered.append((resource_id, measurement, unit, scale))
        return (
            lambda data: self.values[resource_id].extend(v for _, v in data)
        ), min_sampling_interval


async def start_ven(bus: RecordingBus, vtn: Vtn, data_dir: Path, load: FixedLoad | None):
    store = RevisionStore(data_dir)
    zones = ZoneDirectory(bus)
    await zones.start()
    ven = OpenADR2Ven(
        OpenADR2Settings(vtn_url=vtn.url, ven_name="gridctl-test", report_min_period_s=1),
        Intake(store, Publisher(bus, store)),
        zones,
        DEFAULT_SIMPLE_LEVELS,
        load=load,
    )
    await ven.start()
    return ven, zones, store


async def test_telemetry_usage_per_zone_is_offered_and_updated(
    bus: RecordingBus, vtn: Vtn, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"), ("cs-3", "zone-b"))
    sink = ReportSink()
    vtn.server.add_handler("on_register_report", sink.on_register_report)
    ven, zones, store = await start_ven(
        bus, vtn, tmp_path, FixedLoad({"zone-a": 10.0, "zone-b": 4.0})
    )
    try:
        # METADATA_TELEMETRY_USAGE at registration: one real-power data point per zone, kW
        assert sorted(r for r, *_ in sink.offered) == ["zone-a", "zone-b"]
        assert {(m, u, s) for _, m, u, s in sink.offered} == {("RealPower", "W", "k")}
        async with asyncio.timeout(30):  # liveness bound: the VTN asked for 1 s samples
            while min(len(sink.values["zone-a"]), len(sink.values["zone-b"])) < 2:
                await asyncio.sleep(0.1)
        assert set(sink.values["zone-a"]) == {10.0}
        assert set(sink.values["zone-b"]) == {4.0}
    finally:
        await ven.stop()
        await zones.stop()
        store.close()


async def test_a_new_zone_registers_its_report(bus: RecordingBus, vtn: Vtn, tmp_path: Path) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    sink = ReportSink()
    vtn.server.add_handler("on_register_report", sink.on_register_report)
    ven, zones, store = await start_ven(
        bus, vtn, tmp_path, FixedLoad({"zone-a": 1.0, "zone-n": 2.0})
    )
    try:
        assert await ven.refresh_reports() is False  # nothing changed
        await add_stations(bus, ("cs-9", "zone-n"))
        async with asyncio.timeout(10):
            while "zone-n" not in zones.zones():
                await asyncio.sleep(0.05)
        assert await ven.refresh_reports() is True
        assert ven.registered and ven.client.ven_id == VEN_ID
        assert "zone-n" in [r for r, *_ in sink.offered]
    finally:
        await ven.stop()
        await zones.stop()
        store.close()


async def test_intervals_of_one_event_are_one_event_and_one_answer(
    bus: RecordingBus, vtn: Vtn, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    ven, zones, store = await start_ven(bus, vtn, tmp_path, None)
    try:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
        vtn.server.add_event(
            ven_id=VEN_ID,
            signal_name="SIMPLE",
            signal_type="level",
            intervals=[
                {"dtstart": start, "duration": timedelta(minutes=10), "signal_payload": 2},
                {
                    "dtstart": start + timedelta(minutes=10),
                    "duration": timedelta(minutes=10),
                    "signal_payload": 1,
                },
            ],
            targets=[{"group_id": "zone-a"}],
            callback=vtn.callback,
            event_id="ev-multi",
        )
        # openleadr's add_event drops its ramp_up_period argument (add_raw_event rebuilds
        # the active period); put it where the VTN's template reads it
        vtn.event("ev-multi").active_period["ramp_up_period"] = timedelta(minutes=2)
        await ven.poll_now()
        got = sorted(bus.published, key=lambda s: s.start_ts)
        assert [(s.event_id, s.target_reduction_pct) for s in got] == [
            ("openadr2:ev-multi", 50.0),
            ("openadr2:ev-multi", 20.0),
        ]
        # ramp-up: the first interval starts 2 min early; the second keeps its window
        assert [s.start_ts for s in got] == [
            start - timedelta(minutes=2),
            start + timedelta(minutes=10),
        ]
        assert vtn.opts == {"ev-multi": "optIn"}
    finally:
        await ven.stop()
        await zones.stop()
        store.close()


async def test_losing_every_station_mid_event_sends_create_opt(
    bus: RecordingBus, vtn: Vtn, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    ven, zones, store = await start_ven(bus, vtn, tmp_path, None)
    try:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        vtn.server.add_event(
            ven_id=VEN_ID,
            signal_name="SIMPLE",
            signal_type="level",
            intervals=[{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1}],
            targets=[{"group_id": "zone-a"}],
            callback=vtn.callback,
            event_id="ev-lost",
        )
        await ven.poll_now()
        assert vtn.opts == {"ev-lost": "optIn"}
        assert await ven.recheck() == []  # still able
        await bus.publish(topics.STATION_ZONES, "cs-1", None)  # the zone's only station goes
        async with asyncio.timeout(10):
            while zones.is_zone("zone-a"):
                await asyncio.sleep(0.05)
        assert await ven.recheck() == ["ev-lost"]
        assert await ven.recheck() == []  # once
        [opt] = vtn.created_opts
        assert (opt["opt_type"], opt["opt_reason"], opt["event_id"]) == (
            "optOut",
            "notParticipating",
            "ev-lost",
        )
    finally:
        await ven.stop()
        await zones.stop()
        store.close()


@pytest.mark.parametrize("noisy", ["openleadr", "apscheduler"])
def test_library_logs_are_quiet_at_info(noisy: str) -> None:
    import logging

    import dr_bridge.openadr2  # noqa: F401  (sets the levels)

    assert not logging.getLogger(noisy).isEnabledFor(logging.INFO)
