"""Simulated chargers against a real central system (the test peer) over loopback.

Each test runs real websockets and the ocpp library on both ends. Waits are bounded but
nothing asserts on speed: the meter interval is short only to keep the suite quick.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from simulator import ChargerSettings, Fleet, FleetConfig, SessionMix, StationSpec
from tests.simulator.csms_peer import TestCentralSystem

VERSIONS = ["1.6", "2.0.1"]
FAST = ChargerSettings(
    meter_interval=0.2,
    heartbeat_interval=30.0,
    mix=SessionMix(
        occupancy=1.0,
        target_kwh=(1000.0, 1000.0),
        capacity_kwh=(2000.0, 2000.0),
        soc_start=(10.0, 10.0),
        single_phase_share=0.0,
        ev_max_amps=(32.0,),
    ),
)
FULL_W = 11000.0  # 16 A x 230 V x 3 phases is 11,040 W; the car takes all of it


def spec(version: str, **kw: object) -> StationSpec:
    return StationSpec(
        "sim-0001",
        "zone-01",
        max_station_kw=11.04,
        phases=3,
        password="s3cret",
        ocpp_version=version,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def cs() -> AsyncIterator[TestCentralSystem]:
    async with TestCentralSystem() as peer:
        yield peer


async def start_one(cs: TestCentralSystem, station: StationSpec) -> Fleet:
    fleet = Fleet(FleetConfig(url=cs.url, chargers=1, stations=[station], settings=FAST, ramp_up=0))
    await fleet.start()
    await cs.station(station.station_id)
    return fleet


@pytest.mark.parametrize("version", VERSIONS)
async def test_profile_limits_clear_restores_and_valid_to_lapses(
    cs: TestCentralSystem, version: str
) -> None:
    fleet = await start_one(cs, spec(version))
    sid = "sim-0001"
    try:
        st = cs.stations[sid]
        assert st.version == version
        expected = "Basic " + base64.b64encode(b"sim-0001:s3cret").decode()
        assert st.authorization == expected

        await cs.wait_sample(sid, lambda s: s.power_w > FULL_W)

        # A station-wide limit: the reported draw drops under it and stays there.
        assert await cs.set_max_profile(sid, 5000.0) == "Accepted"
        t_set = time.time()
        first = await cs.wait_sample(sid, lambda s: 0 < s.power_w <= 5000.0, after=t_set)
        assert first.offered_w == pytest.approx(5000.0, abs=1.0)
        await cs.wait_sample(sid, lambda s: True, after=first.at + 0.5)
        later = [s for s in st.samples if s.at >= first.at and s.power_w is not None]
        assert later and all(s.power_w <= 5000.0 for s in later)

        # Cleared: back to full power.
        assert await cs.clear(sid) == "Accepted"
        await cs.wait_sample(sid, lambda s: s.power_w > FULL_W, after=time.time())

        # A self-expiring limit: holds until validTo, then lapses with nobody clearing it.
        valid_to = time.time() + 1.5
        assert await cs.set_max_profile(sid, 16.0 * 230 * 2, valid_to=valid_to) == "Accepted"
        await cs.wait_sample(sid, lambda s: 0 < s.power_w <= 7360.0, after=time.time())
        back = await cs.wait_sample(sid, lambda s: s.power_w > FULL_W, after=time.time())
        assert back.at >= valid_to - 0.002  # validTo travels with millisecond precision
        assert fleet.observations.received["SetChargingProfile"] == 2
        assert fleet.observations.received["ClearChargingProfile"] == 1
    finally:
        await fleet.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_limit_below_six_amps_pauses_and_amps_unit_works(
    cs: TestCentralSystem, version: str
) -> None:
    fleet = await start_one(cs, spec(version))
    sid = "sim-0001"
    try:
        await cs.wait_sample(sid, lambda s: s.power_w > FULL_W)
        # 5 A per phase is under the AC floor: the charger pauses, offering nothing.
        assert await cs.set_max_profile(sid, 5.0, unit="A") == "Accepted"
        paused = await cs.wait_sample(sid, lambda s: s.power_w == 0.0, after=time.time())
        assert paused.offered_w == 0.0
        assert fleet.charger(sid).paused
        # 0 is an explicit pause as well.
        assert await cs.set_max_profile(sid, 0.0, unit="A") == "Accepted"
        await cs.wait_sample(sid, lambda s: s.power_w == 0.0, after=time.time())
        # 8 A: 8 x 230 x 3 = 5,520 W.
        assert await cs.set_max_profile(sid, 8.0, unit="A") == "Accepted"
        s = await cs.wait_sample(sid, lambda s: s.power_w > 0, after=time.time())
        assert s.power_w == pytest.approx(5520.0, abs=1.0)
        reply = await cs.composite(sid)
        assert reply.status == "Accepted"
        schedule = reply.charging_schedule if version == "1.6" else reply.schedule
        assert schedule["charging_rate_unit"] == "W"
        assert schedule["charging_schedule_period"][0]["limit"] == pytest.approx(5520.0)
    finally:
        await fleet.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_rejects_station_max_profile_but_obeys_tx_default(
    cs: TestCentralSystem, version: str
) -> None:
    fleet = await start_one(cs, spec(version, reject_max_profile=True))
    sid = "sim-0001"
    try:
        await cs.wait_sample(sid, lambda s: s.power_w > FULL_W)
        assert await cs.set_max_profile(sid, 4200.0) == "Rejected"
        assert await cs.set_max_profile(sid, 4200.0, purpose="default") == "Accepted"
        s = await cs.wait_sample(sid, lambda s: s.power_w <= 4200.0, after=time.time())
        assert s.power_w > 0
        statuses = [e.status for e in fleet.observations.profile_events]
        assert statuses == ["Rejected", "Accepted"]
    finally:
        await fleet.stop()


async def test_mixed_fleet_connects_with_session_messages(cs: TestCentralSystem) -> None:
    fleet = Fleet(
        FleetConfig(url=cs.url, chargers=6, zones=2, ratio_201=0.5, seed=7, settings=FAST)
    )
    await fleet.start()
    try:
        assert await fleet.wait_connected(timeout=20)
        for sid in fleet.states:
            await cs.wait_sample(sid, lambda s: s.power_w > 0)
        versions = sorted(st.version for st in cs.stations.values())
        assert versions == ["1.6"] * 3 + ["2.0.1"] * 3
        for st in cs.stations.values():
            if st.version == "1.6":
                assert {"Authorize", "StartTransaction"} <= set(st.actions)
            else:
                assert {"Authorize", "TransactionEvent:Started"} <= set(st.actions)
        snap = fleet.snapshot()
        assert snap.connected == 6 and snap.sessions == 6 and snap.total_kw > 0
        assert set(snap.zone_kw) == {"zone-01", "zone-02"}
        summary = fleet.observations.summary()
        assert summary["call_errors"] == {} and summary["ack_p50_ms"] is not None
    finally:
        await fleet.stop()


async def test_reconnects_after_the_central_system_restarts() -> None:
    async with TestCentralSystem() as first:
        url = first.url
        fleet = Fleet(
            FleetConfig(
                url=url, chargers=1, settings=FAST, ramp_up=0, backoff_min=0.05, backoff_max=0.2
            )
        )
        await fleet.start()
        await first.station("sim-0001")
    # The first central system is gone; a new one on the same port takes over.
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    from websockets.asyncio.server import serve

    second = TestCentralSystem()
    second._server = await serve(
        second._handle, "127.0.0.1", port, subprotocols=["ocpp2.0.1", "ocpp1.6"]
    )  # type: ignore[list-item]
    try:
        await second.station("sim-0001")
        await second.wait_sample("sim-0001", lambda s: s.power_w > 0)
        assert fleet.observations.connects >= 2
    finally:
        await fleet.stop()
        await second.__aexit__()


@pytest.mark.parametrize("version", VERSIONS)
async def test_limit_lapses_at_valid_to_while_the_central_system_is_gone(version: str) -> None:
    async with TestCentralSystem() as cs:
        fleet = Fleet(
            FleetConfig(
                url=cs.url,
                chargers=1,
                stations=[spec(version)],
                settings=FAST,
                ramp_up=0,
                backoff_min=5.0,  # stay offline past validTo
                backoff_max=5.0,
            )
        )
        await fleet.start()
        await cs.station("sim-0001")
        await cs.wait_sample("sim-0001", lambda s: s.power_w > FULL_W)
        valid_to = time.time() + 1.0
        assert await cs.set_max_profile("sim-0001", 4200.0, valid_to=valid_to) == "Accepted"
        await cs.wait_sample("sim-0001", lambda s: 0 < s.power_w <= 4200.0, after=time.time())
    try:
        # The CSMS is gone; nobody clears the limit, yet the charger drops it at validTo.
        view = fleet.charger("sim-0001")
        assert not view.connected or view.power_kw <= 4.2
        async with asyncio.timeout(10):
            while fleet.charger("sim-0001").power_kw * 1000 <= FULL_W:
                await asyncio.sleep(0.05)
        # validTo travels with millisecond precision: allow for the truncated digits.
        assert time.time() >= valid_to - 0.002
        assert not fleet.charger("sim-0001").connected
    finally:
        await fleet.stop()


async def test_boot_pending_is_retried_after_the_interval() -> None:
    async with TestCentralSystem(pending_boots=2) as cs:
        fleet = await start_one(cs, spec("2.0.1"))
        try:
            st = cs.stations["sim-0001"]
            assert st.actions[:3] == ["BootNotification:Pending"] * 2 + ["BootNotification"]
            await cs.wait_sample("sim-0001", lambda s: s.power_w > 0)
        finally:
            await fleet.stop()


def test_same_seed_same_fleet_and_sessions() -> None:
    def build(seed: int) -> Fleet:
        return Fleet(
            FleetConfig(url="ws://unused", chargers=30, zones=3, seed=seed),
            clock=lambda: 1_700_000_000.0,
        )

    a, b, c = build(4), build(4), build(5)
    assert a.specs == b.specs
    arrivals = [s.next_arrival for s in a.states.values()]
    assert arrivals == [s.next_arrival for s in b.states.values()]
    assert arrivals != [s.next_arrival for s in c.states.values()]
    mix = a.settings.mix
    sa = [mix.new_session(s.rng(4, "session"), "x", 0.0) for s in a.states.values()]
    sb = [mix.new_session(s.rng(4, "session"), "x", 0.0) for s in b.states.values()]
    assert sa == sb


@pytest.mark.parametrize("version", VERSIONS)
async def test_central_system_sets_the_sample_interval(cs: TestCentralSystem, version: str) -> None:
    fleet = await start_one(cs, spec(version))
    try:
        assert await cs.set_interval("sim-0001", "0.5") == ("Accepted", "0.5")
        assert fleet.states["sim-0001"].interval == 0.5
        assert (await cs.set_interval("sim-0001", "-3"))[0] == "Rejected"
    finally:
        await fleet.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_composite_schedule_steps_up_at_valid_to(cs: TestCentralSystem, version: str) -> None:
    fleet = await start_one(cs, spec(version))
    try:
        valid_to = time.time() + 100
        assert await cs.set_max_profile("sim-0001", 4200.0, valid_to=valid_to) == "Accepted"
        reply = await cs.composite("sim-0001", duration=600)
        schedule = reply.charging_schedule if version == "1.6" else reply.schedule
        periods = schedule["charging_schedule_period"]
        assert [p["limit"] for p in periods] == [4200.0, pytest.approx(11040.0)]
        assert 98 <= periods[1]["start_period"] <= 100
    finally:
        await fleet.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_sessions_end_when_the_car_is_full_and_the_next_car_arrives(
    cs: TestCentralSystem, version: str
) -> None:
    short = dataclasses.replace(
        FAST,
        mix=dataclasses.replace(FAST.mix, target_kwh=(0.004, 0.004), mean_idle_s=0.3),
    )
    fleet = Fleet(
        FleetConfig(url=cs.url, chargers=1, stations=[spec(version)], settings=short, ramp_up=0)
    )
    await fleet.start()
    try:
        await cs.station("sim-0001")
        st = cs.stations["sim-0001"]
        start, stop = (
            ("StartTransaction", "StopTransaction")
            if version == "1.6"
            else ("TransactionEvent:Started", "TransactionEvent:Ended")
        )
        async with asyncio.timeout(20):
            while st.actions.count(start) < 2:
                await asyncio.sleep(0.05)
        starts = [i for i, a in enumerate(st.actions) if a == start]
        assert starts[0] < st.actions.index(stop) < starts[1]  # the first car left first
        # 4 Wh per car: the register holds the first car's and part of the second's.
        assert fleet.states["sim-0001"].meter.energy_wh == pytest.approx(8.0, abs=4.1)
    finally:
        await fleet.stop()
