"""The whole loop with ``--gateway-workers 2``: two gateway processes on one port.

``gridctl run``'s runtime in this process with two ``gridctl gateway`` worker processes
sharing the OCPP port (SO_REUSEPORT) and, since no Kafka is given, the embedded Tansu
broker started by ``run`` between them and the engine. A 1.6 and a 2.0.1 charger (the
ocpp library, real websockets) are made to land on different workers: the kernel picks
the worker, so the 2.0.1 charger reconnects until ``ocpp.station_status`` says another
worker holds it than the 1.6 one. A zone limit then reaches both, each from the worker
holding it, and neither worker reports the station it does not hold as Offline.

Zone limit 10 kW over two 3-phase 230 V stations (limited in W) each drawing 11 kW: a
CURTAIL keeps each active session at its minimum, 6 A x 3 x 230 V = 4.14 kW rounded up to
the 0.1 kW step = 4.2 kW; the 10 - 8.4 = 1.6 kW left is shared by the frozen demands
11 : 11, 0.8 kW each: 5.0 kW for each station.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidHandshake

from cli.runtime import RunSettings, Runtime
from pipeline import topics
from pipeline.bus import Bus, Subscription
from pipeline.contracts import CommandResult, StationStatus, decode
from pipeline.embedded_pg import free_port
from tests.loop_kit import gridctl
from tests.loop_kit import meter_loop as _meter_loop
from tests.ocpp_gateway.chargers import charger

pytestmark = [
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here"),
    pytest.mark.timeout(240),
]

PASSWORD = "s3cret-pw"


async def holder(sub: Subscription, station: str, seen: dict[str, str]) -> str:
    """The worker named by the latest Connected record of ``station`` (waits for one)."""
    async with asyncio.timeout(20):
        while station not in seen:
            for record in await sub.batch(500, timeout=0.5):
                status = decode(StationStatus, record.value or b"")
                if status.event == "Connected" and status.gateway:
                    seen[status.station_id] = status.gateway
    return seen.pop(station)


async def connect(port: int, station: str, version: str) -> tuple[Any, contextlib.AsyncExitStack]:
    """A charger connected and booted (retried while the workers learn its credentials),
    and the stack that closes it."""
    for attempt in range(40):
        stack = contextlib.AsyncExitStack()
        try:
            cp = await stack.enter_async_context(charger(port, station, version, password=PASSWORD))
        except (OSError, InvalidHandshake):  # 401/404 until this worker has the station
            await stack.aclose()
            if attempt == 39:
                raise
            await asyncio.sleep(0.25)
            continue
        if version == "1.6":
            boot: Any = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
        else:
            boot = call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
            )
        assert (await cp.call(boot)).status == "Accepted"
        return cp, stack
    raise AssertionError("unreachable")


async def _events_loop(cp: Any, watts: float) -> None:
    tx = {"transaction_id": "tx-workers"}
    kind = "Started"
    for seq in range(10_000):
        sample = {
            "timestamp": datetime.now(UTC).isoformat(),
            "sampled_value": [{"value": watts, "measurand": "Power.Active.Import",
                               "unit_of_measure": {"unit": "W"}}],
        }  # fmt: skip
        await cp.call(
            call201.TransactionEvent(
                event_type=kind, timestamp=datetime.now(UTC).isoformat(),
                trigger_reason="MeterValuePeriodic", seq_no=seq, transaction_info=tx,
                evse={"id": 1, "connector_id": 1} if kind == "Started" else None,
                meter_value=[sample],
            )
        )  # fmt: skip
        kind = "Updated"
        await asyncio.sleep(0.5)


def limit_kw(profile: dict) -> float:
    schedule = profile["charging_schedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    limit = schedule["charging_schedule_period"][0]["limit"]
    limit = float(limit)
    return limit / 1000 if schedule["charging_rate_unit"] == "W" else limit * 3 * 230 / 1000


async def results(bus: Bus, station: str) -> list[str]:
    """Statuses of the station's command results: once one is there, and 2 s more."""
    sub = bus.subscribe([topics.COMMAND_RESULTS], group=None, from_beginning=True)
    out: list[str] = []

    async def more() -> None:
        batch = await sub.batch(10_000, timeout=0.5)
        out.extend(decode(CommandResult, r.value).status for r in batch
                   if r.key == station and r.value)  # fmt: skip

    try:
        async with asyncio.timeout(20):
            while not out:
                await more()
        for _ in range(4):  # anything another worker would have said comes by now
            await more()
    finally:
        await sub.close()
    return out


@pytest.fixture(
    params=["embedded", pytest.param("kafka", marks=pytest.mark.drill)],
)
def bus_choice(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The embedded default (``run`` starts Tansu), and the session's broker as ``--bus
    kafka`` (a drill: the same Kafka client path, another ~40 s)."""
    if request.param == "embedded":
        return {"bus": "local"}
    broker = request.getfixturevalue("kafka")
    return {"bus": "kafka", "kafka_bootstrap": broker.bootstrap,
            "kafka_config": dict(broker.client_config)}  # fmt: skip


async def test_two_workers_each_deliver_to_the_charger_they_hold(
    tmp_path: Path, postgres: str, bus_choice: dict[str, Any]
) -> None:
    settings = RunSettings(
        data_dir=tmp_path / "data",
        database_url=postgres,
        ocpp_port=free_port(),
        api_port=free_port(),
        tick=0.5,
        gateway_workers=2,
        **bus_choice,
    )
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    assert len(runtime.gateway_pids) == 2 and "2 gateway workers" in endpoints.bus
    assert ("embedded Tansu" in endpoints.bus) == (bus_choice["bus"] == "local")
    zone = f"zone-{uuid.uuid4().hex[:6]}"
    a16, b201 = f"w16-{uuid.uuid4().hex[:6]}", f"w201-{uuid.uuid4().hex[:6]}"
    api = ["--api", endpoints.api_url, "--token", endpoints.token or ""]
    assert runtime.bus is not None
    status = runtime.bus.subscribe([topics.STATION_STATUS], group=None, from_beginning=True)
    seen: dict[str, str] = {}
    try:
        csv = tmp_path / "stations.csv"
        csv.write_text(
            "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
            "charging_rate_unit,phases,voltage_v,password\n"
            f"{a16},{zone},22,22,0,W,3,230,{PASSWORD}\n"
            f"{b201},{zone},22,22,0,W,3,230,{PASSWORD}\n"
        )
        await gridctl("stations", "import", str(csv), *api)
        port = settings.ocpp_port
        async with contextlib.AsyncExitStack() as stack:
            cp16, closer = await connect(port, a16, "1.6")
            stack.push_async_exit(closer)
            first = await holder(status, a16, seen)
            for _ in range(30):  # the kernel's spread: reconnect until the other worker
                cs201, closer = await connect(port, b201, "2.0.1")
                second = await holder(status, b201, seen)
                if second != first:
                    break
                await closer.aclose()
            stack.push_async_exit(closer)
            assert {first, second} == {"w0", "w1"}, "30 connections all on one worker"
            await cp16.call(
                call16.StartTransaction(connector_id=1, id_tag="T", meter_start=0,
                                        timestamp=datetime.now(UTC).isoformat())
            )  # fmt: skip
            loops = [
                asyncio.create_task(_meter_loop(cp16, 11000.0)),
                asyncio.create_task(_events_loop(cs201, 11000.0)),
            ]
            try:
                await asyncio.sleep(3.0)  # the engine sees both stations' load
                signal_id = f"sig-{uuid.uuid4().hex[:8]}"
                await gridctl("dr", "send", "--zone", zone, "--limit-kw", "10",
                              "--duration", "10m", "--id", signal_id, *api)  # fmt: skip
                p16 = await asyncio.wait_for(cp16.profiles.get(), timeout=15.0)
                p201 = await asyncio.wait_for(cs201.profiles.get(), timeout=15.0)
                # one attempt each, by the worker holding it (the charger stays connected
                # until its answer is in): no Offline from the other worker
                assert await results(runtime.bus, a16) == ["Accepted"]
                assert await results(runtime.bus, b201) == ["Accepted"]
            finally:
                for task in loops:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        limits = [limit_kw(p16), limit_kw(p201)]
        assert limits == [5.0, 5.0]
        assert p16["valid_to"] and p201["valid_to"], "every limit carries its own expiry"
    finally:
        await status.close()
        await runtime.stop()
