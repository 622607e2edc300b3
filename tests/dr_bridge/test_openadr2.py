"""OpenADR 2.0b VEN against a real openleadr VTN in-process, plain HTTP on loopback.

The VTN (``OpenADRServer``) runs without certificates: unsigned messages over HTTP, fine
for loopback tests only. Polls are driven by ``poll_now()`` so nothing waits on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openleadr import objects

from dr_bridge.config import DEFAULT_SIMPLE_LEVELS, OpenADR2Settings
from dr_bridge.intake import Intake
from dr_bridge.openadr2 import OpenADR2Ven
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore
from dr_bridge.zones import ZoneDirectory
from tests.dr_bridge.conftest import RecordingBus, add_stations
from tests.dr_bridge.oa2_vtn import VEN_ID, Vtn, add_simple


@dataclass
class Stack:
    bus: RecordingBus
    data_dir: Path
    vtn: Vtn
    parts: list = field(default_factory=list)

    async def start_ven(self) -> OpenADR2Ven:
        """A fresh VEN process state on the same data directory."""
        store = RevisionStore(self.data_dir)
        publisher = Publisher(self.bus, store)
        zones = ZoneDirectory(self.bus)
        await zones.start()
        ven = OpenADR2Ven(
            OpenADR2Settings(vtn_url=self.vtn.url, ven_name="gridctl-test"),
            Intake(store, publisher),
            zones,
            DEFAULT_SIMPLE_LEVELS,
        )
        await ven.start()
        self.parts.append((ven, zones, store))
        return ven

    async def stop_all(self) -> None:
        for ven, zones, store in self.parts:
            await ven.stop()
            await zones.stop()
            store.close()
        self.parts.clear()


@pytest.fixture
async def stack(bus: RecordingBus, vtn: Vtn, tmp_path: Path) -> AsyncIterator[Stack]:
    await add_stations(bus, ("cs-1", "zone-a"), ("cs-2", "zone-a"), ("cs-3", "zone-b"))
    s = Stack(bus, tmp_path / "bridge", vtn)
    yield s
    await s.stop_all()


async def test_registration_event_modification_cancellation_restart(stack: Stack) -> None:
    ven = await stack.start_ven()
    assert ven.registered
    assert ven.client.ven_id == VEN_ID

    start = add_simple(stack.vtn, "ev-1", 2, [{"group_id": "zone-a"}, {"resource_id": "cs-3"}])
    await ven.poll_now()
    got = {
        (s.zone_id, s.signal_type, s.target_reduction_pct, s.modification)
        for s in stack.bus.published
    }
    assert got == {("zone-a", "CURTAIL", 50.0, 0), ("zone-b", "CURTAIL", 50.0, 0)}
    first = stack.bus.published[0]
    assert first.source == "openadr2"
    assert first.start_ts == start and first.end_ts == start + timedelta(minutes=30)
    assert first.signal_id.startswith("oadr2:ev-1:")
    # Every interval and zone of the event names it: the pipeline gives them one baseline.
    assert {s.event_id for s in stack.bus.published} == {"openadr2:ev-1"}
    assert stack.vtn.opts["ev-1"] == "optIn"

    # A repeated poll with nothing new publishes nothing.
    await ven.poll_now()
    assert len(stack.bus.published) == 2

    # Modification: level 3 -> SHED 100 %, same signal ids, modification 1.
    stack.vtn.modify("ev-1", 3)
    await ven.poll_now()
    newer = stack.bus.published[2:]
    assert {(s.zone_id, s.signal_type, s.target_reduction_pct, s.modification) for s in newer} == {
        ("zone-a", "SHED", 100.0, 1),
        ("zone-b", "SHED", 100.0, 1),
    }
    assert {s.signal_id for s in newer} == {s.signal_id for s in stack.bus.published[:2]}

    # Cancellation -> RESTORE for both zones at the cancelling modification.
    stack.vtn.server.cancel_event(VEN_ID, "ev-1")
    await ven.poll_now()
    restores = stack.bus.published[4:]
    assert {(s.zone_id, s.signal_type, s.modification) for s in restores} == {
        ("zone-a", "RESTORE", 2),
        ("zone-b", "RESTORE", 2),
    }
    assert all(s.target_reduction_pct is None for s in restores)

    # A second live event, then a restart: new VEN state, same data dir -> no duplicates.
    add_simple(stack.vtn, "ev-2", 1, [{"group_id": "zone-b"}])
    await ven.poll_now()
    assert [(s.zone_id, s.target_reduction_pct) for s in stack.bus.published[6:]] == [
        ("zone-b", 20.0)
    ]
    before = len(stack.bus.published)
    await stack.stop_all()
    ven2 = await stack.start_ven()
    assert ven2.registered
    await ven2.poll_now()
    assert len(stack.bus.published) == before


async def test_opt_out_when_no_target_maps_to_a_known_zone(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    ven = await stack.start_ven()
    add_simple(stack.vtn, "ev-x", 2, [{"group_id": "zone-x"}, {"resource_id": "cs-99"}])
    await ven.poll_now()
    assert stack.vtn.opts["ev-x"] == "optOut"
    assert stack.bus.published == []
    assert "no target maps to a known zone" in caplog.text
    assert "group_id zone-x" in caplog.text


async def test_ven_id_target_means_every_zone(stack: Stack) -> None:
    ven = await stack.start_ven()
    add_simple(stack.vtn, "ev-all", 1, [{"ven_id": VEN_ID}])
    await ven.poll_now()
    assert {s.zone_id for s in stack.bus.published} == {"zone-a", "zone-b"}


async def test_intervals_without_dtstart_and_implied_cancellation(stack: Stack) -> None:
    ven = await stack.start_ven()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="ev-raw",
            modification_number=0,
            market_context="oadr://test",
            event_status="far",
            created_date_time=datetime.now(UTC),
        ),
        active_period=objects.ActivePeriod(dtstart=start, duration=timedelta(minutes=45)),
        event_signals=[
            objects.EventSignal(
                signal_name="LOAD_DISPATCH",
                signal_type="setpoint",
                signal_id="sig-1",
                intervals=[
                    {"duration": timedelta(minutes=15), "signal_payload": 120.0, "uid": 0},
                    {"duration": timedelta(minutes=30), "signal_payload": 80.0, "uid": 1},
                ],
            )
        ],
        targets=[{"group_id": "zone-a"}],
        response_required="always",
    )
    # add_raw_event would recompute the active period from the intervals' dtstart (which
    # these lack, as some VTNs send them), so queue the event the way it does, directly.
    stack.vtn.server.events.setdefault(VEN_ID, []).append(event)
    stack.vtn.server.events_updated[VEN_ID] = True
    stack.vtn.server.event_callbacks["ev-raw"] = (event, stack.vtn.callback)
    await ven.poll_now()
    got = sorted(stack.bus.published, key=lambda s: s.start_ts)
    assert [(s.zone_limit_kw, s.start_ts, s.end_ts) for s in got] == [
        (120.0, start, start + timedelta(minutes=15)),
        (80.0, start + timedelta(minutes=15), start + timedelta(minutes=45)),
    ]
    # The VTN drops the event without cancelling it: we notice and restore.
    add_simple(stack.vtn, "ev-keep", 1, [{"group_id": "zone-b"}])
    stack.vtn.drop("ev-raw")
    await ven.poll_now()
    restored = [s for s in stack.bus.published if s.signal_type == "RESTORE"]
    assert {s.signal_id for s in restored} == {s.signal_id for s in got}
    assert all(s.modification == 1 for s in restored)


async def test_registration_is_retried_until_the_vtn_answers(
    bus: RecordingBus, tmp_path: Path
) -> None:
    from openleadr import OpenADRServer

    from tests.dr_bridge.oa2_vtn import free_port

    port = free_port()
    store = RevisionStore(tmp_path)
    zones = ZoneDirectory(bus)
    await zones.start()
    ven = OpenADR2Ven(
        OpenADR2Settings(vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", ven_name="g"),
        Intake(store, Publisher(bus, store)),
        zones,
        DEFAULT_SIMPLE_LEVELS,
        retry_interval_s=0.1,
    )
    await ven.start()  # nobody listens yet: not registered, and no exception
    assert not ven.registered
    server = OpenADRServer(
        vtn_id="LateVTN",
        http_port=port,
        http_host="127.0.0.1",
        requested_poll_freq=timedelta(hours=1),
    )

    async def on_create_party_registration(info: dict) -> tuple[str, str]:
        return "ven-late", "reg-late"

    server.add_handler("on_create_party_registration", on_create_party_registration)
    await server.run_async()
    try:
        async with asyncio.timeout(30):  # liveness bound, not a speed assertion
            while not ven.registered:
                await asyncio.sleep(0.05)
        assert ven.client.ven_id == "ven-late"
    finally:
        await ven.stop()
        await zones.stop()
        await server.stop()
        store.close()
