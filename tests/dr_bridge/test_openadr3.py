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
from dr_bridge.telemetry import Measured
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


class FixedLoad:
    """Measured load for the VEN's reports: a fixed kW per zone (a named stand-in for the
    engine's views; the end-to-end test in tests/test_openadr3_loop.py reads the real ones)."""

    def __init__(self, kw: dict[str, float]) -> None:
        self.kw = kw

    async def load_now(self, zones):  # type: ignore[no-untyped-def]
        return {z: self.kw[z] for z in zones if z in self.kw}

    async def window(self, zone: str, start: datetime, end: datetime) -> Measured | None:
        if zone not in self.kw:
            return None
        hours = (end - start).total_seconds() / 3600
        return Measured(avg_kw=self.kw[zone], kwh=self.kw[zone] * hours, minutes=1)


class Ven3Stack:
    def __init__(self, bus: RecordingBus, vtn: Vtn3, data_dir: Path, secret: str) -> None:
        self.bus, self.vtn, self.data_dir, self.secret = bus, vtn, data_dir, secret
        self.parts: list = []
        self.load = FixedLoad({"zone-a": 10.0, "zone-b": 4.0})

    async def start(self, page_size: int = 50, **settings: object) -> OpenADR3Ven:
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
                report_delay_s=0,
                **settings,  # type: ignore[arg-type]
            ),
            Intake(store, Publisher(self.bus, store)),
            zones,
            DEFAULT_SIMPLE_LEVELS,
            transport=httpx.ASGITransport(app=self.vtn.app),
            load=self.load,
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
                # our resources are zones: that is the name the VTN targets
                "targets": [{"type": "RESOURCE_NAME", "values": ["zone-b"]}],
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


# -- conformance: what the reference VTN does to a VEN -----------------------------------
async def test_token_form_fields_and_basic_as_an_option(bus: RecordingBus, tmp_path: Path) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    strict = Ven3Stack(bus, Vtn3(), tmp_path / "a", "s3cret")  # form fields required
    ven = await strict.start()
    await ven.poll_once()
    assert strict.vtn.token_requests == 1 and strict.vtn.token_refusals == []
    # Basic only: a VTN that requires the form fields refuses it, naming the field.
    basic = await strict.start(token_auth="basic")
    with pytest.raises(VtnError, match="client_id"):
        await basic.poll_once()
    await strict.stop()
    lenient = Ven3Stack(bus, Vtn3(allow_basic=True), tmp_path / "b", "s3cret")
    ven = await lenient.start(token_auth="basic")
    await ven.poll_once()
    assert lenient.vtn.tokens  # a token was issued on Basic credentials
    await lenient.stop()


async def test_naive_timestamps_read_as_utc_with_one_warning(
    stack: Ven3Stack, caplog: pytest.LogCaptureFixture
) -> None:
    naive = START.replace(tzinfo=None).isoformat(sep=" ")
    stack.vtn.put(capacity_event("ev-n", 50, intervalPeriod={"start": naive, "duration": "PT1H"}))
    ven = await stack.start()
    with caplog.at_level("WARNING", logger="dr_bridge.openadr3"):
        assert await ven.poll_once() == 1
        stack.vtn.put(
            capacity_event("ev-n", 40, intervalPeriod={"start": naive, "duration": "PT1H"})
        )
        assert await ven.poll_once() == 1
    assert [r.start_ts for r in stack.bus.published] == [START, START]
    warnings = [r for r in caplog.records if "without offset" in r.getMessage()]
    assert len(warnings) == 1


async def test_two_changes_within_one_second_are_both_revisions(stack: Ven3Stack) -> None:
    stack.vtn.put(capacity_event("ev-s", 50), stamp="2026-12-01 14:09:58")
    ven = await stack.start()
    assert await ven.poll_once() == 1
    stack.vtn.put(capacity_event("ev-s", 35), stamp="2026-12-01 14:09:58")
    assert await ven.poll_once() == 1
    assert [(r.modification, r.zone_limit_kw) for r in stack.bus.published] == [(0, 50), (1, 35)]
    # an older modification time (a stale replica) is not a revision
    stack.vtn.put(capacity_event("ev-s", 20), stamp="2026-12-01 14:09:57")
    assert await ven.poll_once() == 0


async def test_percent_capacity_limit_is_a_share_of_the_zone_not_kw(stack: Ven3Stack) -> None:
    ev = capacity_event("ev-p", 0.5)
    ev["payloadDescriptors"][0]["units"] = "PERCENT"
    stack.vtn.put(ev)
    ven = await stack.start()
    await ven.poll_once()
    # zone-a: cs-1 alone, min(22, 22) kW -> half of it
    assert summary(stack.bus.published) == [("oadr3:ev-p:zone-a:0", 0, "CURTAIL", 11.0, None)]


async def test_untargeted_site_limit_is_divided_among_zones_by_capacity(
    bus: RecordingBus, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"), ("cs-2", "zone-a"), ("cs-3", "zone-b"))
    s = Ven3Stack(bus, Vtn3(), tmp_path / "u", "s3cret")
    s.vtn.put(capacity_event("ev-u", 33, targets=None, priority=1))
    ven = await s.start()
    await ven.poll_once()
    # capacities 44 and 22 kW: the site limit of 33 kW becomes 22 + 11, not 33 on each
    got = sorted((r.zone_id, r.zone_limit_kw, r.event_priority) for r in bus.published)
    assert got == [("zone-a", 22.0, 1), ("zone-b", 11.0, 1)]
    await s.stop()


async def test_program_units_and_targets_apply_to_its_events(stack: Ven3Stack) -> None:
    stack.vtn.programs["prog-2"] = {
        "id": "prog-2",
        "programName": "percent-caps",
        "payloadDescriptors": [
            {
                "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                "payloadType": "IMPORT_CAPACITY_LIMIT",
                "units": "PERCENT",
            }
        ],
        "targets": [{"type": "GROUP", "values": ["zone-b"]}],
    }
    ev = capacity_event("ev-g", 0.25, programID="prog-2", targets=None)
    del ev["payloadDescriptors"]
    stack.vtn.put(ev)
    ven = await stack.start()
    await ven.poll_once()
    assert summary(stack.bus.published) == [("oadr3:ev-g:zone-b:0", 0, "CURTAIL", 5.5, None)]


async def test_unmappable_payloads_are_refused_with_a_logged_reason(
    stack: Ven3Stack, caplog: pytest.LogCaptureFixture
) -> None:
    ev = capacity_event("ev-r", 1)
    ev["intervals"][0]["payloads"] = [{"type": "PRICE", "values": [0.3]}]
    stack.vtn.put(ev)
    ev2 = capacity_event("ev-k", 5)
    ev2["payloadDescriptors"][0]["units"] = "KVAR"
    stack.vtn.put(ev2)
    ven = await stack.start()
    with caplog.at_level("INFO", logger="dr_bridge.openadr3"):
        assert await ven.poll_once() == 0
    text = caplog.text
    assert "PRICE: not a curtailment we can act on" in text
    assert "units KVAR cannot be turned into kW" in text


@pytest.mark.parametrize("version", ["3.0.1", "3.1.0"])
async def test_ven_and_one_resource_per_zone_are_registered_once(
    bus: RecordingBus, tmp_path: Path, version: str
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"), ("cs-3", "zone-b"))
    s = Ven3Stack(bus, Vtn3(version=version), tmp_path / version, "s3cret")
    ven = await s.start(version=version)
    await ven.poll_once()
    await ven.poll_once()
    [v] = s.vtn.vens.values()
    assert v["venName"] == "gridctl-ven"
    resources = sorted(
        (r["resourceName"], r["venID"], r["attributes"]) for r in s.vtn.resources.values()
    )
    cap = [{"type": "MAX_POWER_CONSUMPTION", "values": [22.0]}]
    assert resources == [("zone-a", v["id"], cap), ("zone-b", v["id"], cap)]
    # a restart finds the VEN and its resources instead of creating them again
    await s.stop()
    ven = await s.start(version=version)
    await ven.poll_once()
    assert len(s.vtn.vens) == 1 and len(s.vtn.resources) == 2
    await s.stop()


async def test_usage_and_demand_reports_per_the_report_descriptors(stack: Ven3Stack) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ev = capacity_event(
        "ev-rep",
        8,
        intervalPeriod={"start": z(start), "duration": "PT30M"},
        reportDescriptors=[
            {"payloadType": "USAGE", "units": "KWH"},  # defaults: once, after the last interval
            {"payloadType": "DEMAND", "units": "KW", "frequency": 1},  # every interval
            {"payloadType": "STORAGE_CHARGE_LEVEL"},
        ],
    )
    ev["intervals"].append(
        {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [6]}]}
    )
    stack.vtn.put(ev)
    ven = await stack.start()
    await ven.poll_once()
    reports = sorted(stack.vtn.reports, key=lambda r: r["reportName"])
    assert len(reports) == 3  # one USAGE, two DEMAND (one per interval)
    by_kind: dict[str, list] = {}
    for r in reports:
        [resource] = r["resources"]
        assert (r["eventID"], r["programID"], r["clientName"], resource["resourceName"]) == (
            "ev-rep",
            "prog-1",
            "gridctl-ven",
            "zone-a",
        )
        kind = r["payloadDescriptors"][0]["payloadType"]
        by_kind.setdefault(kind, []).extend(
            (i["id"], i["payloads"][0]["values"][0]) for i in resource["intervals"]
        )
    # zone-a draws 10 kW: 5 kWh per half hour; the demand is 10 kW in each interval
    assert sorted(by_kind["USAGE"]) == [(0, 5.0), (1, 5.0)]
    assert sorted(by_kind["DEMAND"]) == [(0, 10.0), (1, 10.0)]
    # each report is sent once, also across a restart
    await ven.poll_once()
    await stack.stop()
    ven = await stack.start()
    await ven.poll_once()
    assert len(stack.vtn.reports) == 3


def test_target_names_map_to_zones() -> None:
    from dr_bridge.oadr2_map import ZoneView
    from dr_bridge.oadr3_map import WHOLE_VEN, target_zones

    view = ZoneView(
        lambda z: z in ("zone-a", "zone-b"), {"cs-3": "zone-b"}.get, lambda: ["zone-a", "zone-b"]
    )
    t = [
        {"type": "RESOURCE_NAME", "values": ["cs-3", "zone-a"]},
        {"type": "GROUP", "values": ["x"]},
    ]
    assert target_zones({"targets": t}, "me", view) == (["zone-a", "zone-b"], ["GROUP x"])
    assert target_zones({"targets": ["cs-3"]}, "me", view) == (["zone-b"], [])  # 3.1 strings
    assert target_zones({"targets": [{"type": "VEN_NAME", "values": ["me"]}]}, "me", view) == (
        [WHOLE_VEN],
        [],
    )
    assert target_zones({}, "me", view) == ([WHOLE_VEN], [])


async def test_subscription_callback_wakes_the_ven_and_polling_stays_the_fallback(
    bus: RecordingBus, tmp_path: Path
) -> None:
    from dr_bridge import Bridge, BridgeSettings

    await add_stations(bus, ("cs-1", "zone-a"))
    vtn = Vtn3()
    callback = "http://bridge/v1/openadr3/notifications"
    settings = BridgeSettings(
        data_dir=tmp_path,
        tokens=("api-token",),
        openadr3_vtn_url="http://vtn3",
        openadr3_client_id="ven-client",
        openadr3_client_secret="s3cret",
        openadr3_poll_interval_s=3600,  # no timed poll during the test: only the callback
        openadr3_callback_url=callback,
    )
    to_vtn = httpx.ASGITransport(app=vtn.app)
    async with Bridge(bus, settings, serve_api=False, openadr3_transport=to_vtn) as bridge:
        async with asyncio.timeout(20):  # liveness bound: the first round subscribes
            while not vtn.subscriptions:
                await asyncio.sleep(0.02)
        [sub] = vtn.subscriptions.values()
        [op] = sub["objectOperations"]
        assert (sub["clientName"], sub["programID"], op["objects"], op["callbackUrl"]) == (
            "gridctl",
            "prog-1",
            ["EVENT"],
            callback,
        )
        event = capacity_event("ev-cb", 33)
        vtn.put(event)
        to_bridge = httpx.AsyncClient(transport=httpx.ASGITransport(app=bridge.app))
        async with to_bridge:
            await vtn.notify(to_bridge, "CREATE", vtn.events["ev-cb"])
            async with asyncio.timeout(20):
                while not bus.published:
                    await asyncio.sleep(0.02)
            assert vtn.notified == [(callback, 200)]
            # the API token is not the callback's token, and no token is refused too
            for headers in ({"Authorization": "Bearer api-token"}, {}):
                r = await to_bridge.post(callback, json={}, headers=headers)
                assert r.status_code == 401
            r = await to_bridge.get(callback, params={"echo": "ping-123"})
            assert r.text == "ping-123"
        first_token = op["bearerToken"]
    assert summary(bus.published) == [("oadr3:ev-cb:zone-a:0", 0, "CURTAIL", 33.0, None)]
    # a restart updates our subscription with the new process's token, no duplicate
    async with Bridge(bus, settings, serve_api=False, openadr3_transport=to_vtn):
        async with asyncio.timeout(20):
            while vtn.subscriptions[sub["id"]]["objectOperations"][0]["bearerToken"] == first_token:
                await asyncio.sleep(0.02)
    assert len(vtn.subscriptions) == 1
