"""Twenty simulated chargers through the real gateway on LocalBus: the closed loop's OCPP half.

Stations are registered with per-station scrypt hashes (the gateway refuses unknown
stations here), a quarter of them refuse ChargePointMaxProfile so the gateway's
TxDefaultProfile fallback runs, and the readings the gateway publishes to
``ocpp.meter_values`` must fall under the commanded limit and recover after the tombstone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import Bus, LocalBus
from pipeline.contracts import (
    CommandResult,
    ContractError,
    MeterValue,
    SetChargingProfileCommand,
    StationCredential,
    StationZone,
    decode,
    encode,
)
from pipeline.secrets import hash_password
from simulator import ChargerSettings, Fleet, FleetConfig, SessionMix
from simulator import stations as st
from tests.fixtures.kafka import unique_key

N = 20
LIMIT_KW = 5.0
SETTINGS = ChargerSettings(
    meter_interval=0.5,
    mix=SessionMix(
        occupancy=1.0,
        target_kwh=(1000.0, 1000.0),
        capacity_kwh=(2000.0, 2000.0),
        soc_start=(10.0, 10.0),
        single_phase_share=0.0,
        ev_max_amps=(32.0,),
    ),
)


class Readings:
    """Every ``ocpp.meter_values`` record the gateway published, by station."""

    def __init__(self, bus: Bus) -> None:
        self.by_station: dict[str, list[MeterValue]] = defaultdict(list)
        self._sub = bus.subscribe([topics.METER_VALUES], group=None, from_beginning=True)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for record in await self._sub.batch(500, timeout=0.1):
                # On the session's shared Kafka broker other tests' records (some of them
                # deliberately not contract records) share the topic: skip those.
                if record.value is None:
                    continue
                try:
                    mv = decode(MeterValue, record.value, topic=topics.METER_VALUES)
                except ContractError:
                    continue
                self.by_station[mv.station_id].append(mv)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._sub.close()

    async def wait_all(self, stations: list[str], predicate, after: datetime) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(30):
            while not all(
                any(
                    mv.event_ts > after and mv.power_kw is not None and predicate(mv.power_kw)
                    for mv in self.by_station[sid]
                )
                for sid in stations
            ):
                await asyncio.sleep(0.05)


async def results(bus: Bus, count: int, action: str, ids: set[str]) -> list[CommandResult]:
    sub = bus.subscribe([topics.COMMAND_RESULTS], group=None, from_beginning=True)
    out: list[CommandResult] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < count:
                for record in await sub.batch(500, timeout=0.1):
                    if record.key not in ids or record.value is None:
                        continue  # another test's record on the shared broker
                    res = decode(CommandResult, record.value)
                    if res.action == action and res.station_id in ids:
                        out.append(res)
    finally:
        await sub.close()
    return out


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = LocalBus()
    await b.start()
    yield b
    await b.stop()


async def test_twenty_chargers_obey_the_gateway(any_bus: Bus) -> None:
    """On LocalBus and on KafkaBus (the session's broker; topics shared, so ids unique)."""
    bus = any_bus
    prefix = unique_key("sim")
    specs = [
        dataclasses.replace(s, station_id=f"{prefix}-{i:02d}")
        for i, s in enumerate(
            st.generate(N, zones=2, seed=11, ratio_201=0.5, reject_max_profile_fraction=0.25)
        )
    ]
    assert any(s.reject_max_profile for s in specs)
    loop = asyncio.get_running_loop()
    hashes = await asyncio.gather(
        *(loop.run_in_executor(None, hash_password, s.password) for s in specs)
    )
    for s, h in zip(specs, hashes, strict=True):
        cred = StationCredential(station_id=s.station_id, password_hash=h)
        zone = StationZone(
            station_id=s.station_id,
            zone_id=s.zone_id,
            max_station_kw=s.max_station_kw,
            contract_max_kw=s.contract_max_kw,
            min_active_kw=s.min_active_kw,
            charging_rate_unit=s.charging_rate_unit,  # type: ignore[arg-type]
            phases=s.phases,  # type: ignore[arg-type]
            voltage_v=s.voltage_v,
        )
        await bus.publish(topics.STATION_CREDENTIALS, s.station_id, encode(cred))
        await bus.publish(topics.STATION_ZONES, s.station_id, encode(zone))

    gateway = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=False))
    await gateway.start()
    readings = Readings(bus)
    fleet = Fleet(
        FleetConfig(
            url=f"ws://127.0.0.1:{gateway.port}/ocpp",
            chargers=N,
            stations=specs,
            seed=11,
            settings=SETTINGS,
            ramp_up=0.5,
        )
    )
    ids = [s.station_id for s in specs]
    try:
        await fleet.start()
        assert await fleet.wait_connected(timeout=30)
        assert fleet.observations.connect_failures == {}
        start = datetime.now(UTC) - timedelta(seconds=5)
        await readings.wait_all(ids, lambda kw: kw > LIMIT_KW, start)

        now = datetime.now(UTC)
        for sid in ids:
            cmd = SetChargingProfileCommand(
                station_id=sid,
                target_power_kw=LIMIT_KW,
                signal_id="sig-sim",
                priority=2,
                dr_end_ts=now + timedelta(hours=1),
                command_ts=now,
            )
            await bus.publish(topics.SET_CHARGING_PROFILE, sid, encode(cmd))
        refusing = {s.station_id for s in specs if s.reject_max_profile}
        # One result per attempt: refusing stations answer Rejected, then the fallback lands.
        attempts = await results(bus, N + len(refusing), "SetChargingProfile", set(ids))
        by_station: dict[str, list[str]] = defaultdict(list)
        for r in attempts:
            by_station[r.station_id].append(r.status)
        assert by_station == {
            sid: ["Rejected", "Accepted"] if sid in refusing else ["Accepted"] for sid in ids
        }
        applied = [r for r in attempts if r.status == "Accepted"]
        accepted_at = max(r.result_ts for r in applied)
        settle = accepted_at + timedelta(milliseconds=100)
        await readings.wait_all(ids, lambda kw: 0 < kw <= LIMIT_KW, settle)
        # Once a charger acknowledged, nothing it samples afterwards exceeds the limit.
        for r in applied:
            later = [
                mv
                for mv in readings.by_station[r.station_id]
                if mv.event_ts > r.result_ts + timedelta(milliseconds=50)
            ]
            assert later and all(mv.power_kw <= LIMIT_KW + 1e-6 for mv in later)  # type: ignore[operator]
        events = fleet.observations.profile_events
        assert {e.station_id for e in events if e.status == "Rejected"} == refusing
        assert {
            e.purpose for e in events if e.station_id in refusing and e.status == "Accepted"
        } == {"TxDefault"}

        # The event ends: tombstones clear the profiles and the load comes back.
        cleared_from = datetime.now(UTC)
        for sid in ids:
            await bus.publish(topics.SET_CHARGING_PROFILE, sid, None)
        await readings.wait_all(ids, lambda kw: kw > LIMIT_KW, cleared_from)
        assert fleet.observations.received["ClearChargingProfile"] == N
        assert sum(fleet.observations.call_errors.values()) == 0
    finally:
        await fleet.stop()
        await readings.close()
        await gateway.stop()


async def test_wrong_password_and_unknown_station_are_refused_and_counted(bus: Bus) -> None:
    (known,) = st.generate(1, seed=3)
    cred = StationCredential(station_id=known.station_id, password_hash=hash_password("right"))
    await bus.publish(topics.STATION_CREDENTIALS, known.station_id, encode(cred))
    gateway = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=False))
    await gateway.start()
    stranger = dataclasses.replace(known, station_id="sim-9999")
    fleet = Fleet(
        FleetConfig(
            url=f"ws://127.0.0.1:{gateway.port}/ocpp",
            chargers=2,
            stations=[dataclasses.replace(known, password="wrong"), stranger],
            settings=SETTINGS,
            ramp_up=0,
            backoff_min=0.1,
            backoff_max=0.2,
        )
    )
    try:
        await fleet.start()
        async with asyncio.timeout(20):
            # an unknown id is answered like a wrong password (401: ids cannot be probed);
            # the retries then back off (429)
            while fleet.observations.connect_failures["HTTP 401"] < 2:
                await asyncio.sleep(0.05)
        assert "HTTP 404" not in fleet.observations.connect_failures
        assert fleet.connected == set() and fleet.observations.connects == 0
    finally:
        await fleet.stop()
        await gateway.stop()


async def test_wss_security_profile_2(bus: Bus, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    (spec,) = st.generate(1, seed=4, ratio_201=1.0)
    cred = StationCredential(
        station_id=spec.station_id, password_hash=hash_password(spec.password), security_profile=2
    )
    await bus.publish(topics.STATION_CREDENTIALS, spec.station_id, encode(cred))
    gateway = Gateway(bus, GatewayConfig(port=0, certfile=str(cert), keyfile=str(key)))
    await gateway.start()
    fleet = Fleet(
        FleetConfig(
            url=f"wss://localhost:{gateway.port}/ocpp",
            chargers=1,
            stations=[spec],
            settings=SETTINGS,
            ramp_up=0,
            ca_file=str(cert),
        )
    )
    try:
        await fleet.start()
        assert await fleet.wait_connected(timeout=20)
        assert fleet.observations.calls["BootNotification"] == 1
    finally:
        await fleet.stop()
        await gateway.stop()
