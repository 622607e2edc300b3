"""The whole loop, as an operator would drive it, on LocalBus and on KafkaBus.

``gridctl run``'s runtime (embedded engine on a real PostgreSQL, gateway, API) in this
process; an OCPP 1.6 charger on the ocpp library over a real websocket; stations and the
DR signal through the real ``gridctl`` command in a subprocess. The charger must get a
SetChargingProfile within 5 s of ``gridctl dr send`` and a ClearChargingProfile within
5 s of ``gridctl dr cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from ocpp.v16 import call

from cli.runtime import RunSettings, Runtime
from pipeline import topics
from pipeline.embedded_pg import free_port
from tests.ocpp_gateway.chargers import charger

GRIDCTL = [sys.executable, "-m", "cli.main"]


async def gridctl(*args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *GRIDCTL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"gridctl {' '.join(args)}: {err.decode()}{out.decode()}"
    return out.decode()


@pytest.fixture(params=["local", "kafka", "local-prefixed"])
def bus_choice(request: pytest.FixtureRequest) -> tuple[str, str | None, dict, str]:
    """Transport, bootstrap, client config and ``${topic_prefix}`` of one run."""
    if request.param == "local":
        return "local", None, {}, ""
    if request.param == "local-prefixed":
        return "local", None, {}, "siteA."
    broker = request.getfixturevalue("kafka")
    return "kafka", broker.bootstrap, dict(broker.client_config), ""


async def _meter_loop(cp: object, watts: float) -> None:
    while True:
        await cp.call(  # type: ignore[attr-defined]
            call.MeterValues(
                connector_id=1,
                transaction_id=1,
                meter_value=[
                    {
                        "timestamp": datetime.now(UTC).isoformat(),
                        "sampled_value": [
                            {"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"}
                        ],
                    }
                ],
            )
        )
        await asyncio.sleep(0.5)


async def engine_sees_load(dsn: str, station: str, timeout: float = 90.0) -> None:
    """Wait until the engine counts ``station``'s load.

    On the session's shared broker the engine first ingests what every earlier test
    published; on a loaded machine that can take longer than a fixed sleep. The 5 s the
    loop is given start once the engine can act on a signal, as in production.
    """

    def load() -> float | None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT load_kw FROM station_load WHERE station_id = %s", (station,)
            ).fetchone()
        return row[0] if row else None

    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(load):
            await asyncio.sleep(0.25)


async def _only_prefixed_topics_used(
    runtime: Runtime, prefix: str, station: str, signal_id: str
) -> None:
    """Every hop of the loop went over the prefixed topics; the bare names stayed empty."""
    raw = runtime.bus.inner  # type: ignore[union-attr]
    hops = [
        (topics.STATION_ZONES, station),  # CLI -> API -> engine, gateway
        (topics.METER_VALUES, station),  # gateway -> engine
        (topics.DEMAND_RESPONSE, signal_id),  # CLI -> bridge -> engine
        (topics.SET_CHARGING_PROFILE, station),  # engine -> gateway
        (topics.COMMAND_RESULTS, station),  # gateway -> engine
    ]
    for name, key in hops:
        sub = raw.subscribe([prefix + name], from_beginning=True)
        got = await sub.batch(max_records=10_000, timeout=0)
        await sub.close()
        assert any(r.key == key for r in got), f"nothing for {key} on {prefix + name}"
        bare = raw.subscribe([name], from_beginning=True)
        assert await bare.batch(max_records=10, timeout=0) == [], f"{name} used without prefix"
        await bare.close()


async def test_dr_send_and_cancel_reach_the_charger(
    tmp_path: Path, postgres: str, bus_choice: tuple[str, str | None, dict, str]
) -> None:
    bus, bootstrap, kafka_config, prefix = bus_choice
    settings = RunSettings(
        data_dir=tmp_path / "data",
        database_url=postgres,
        bus=bus,  # type: ignore[arg-type]
        kafka_bootstrap=bootstrap,
        kafka_config=kafka_config,
        ocpp_port=free_port(),
        api_port=free_port(),
        tick=0.5,
        migration_vars={"topic_prefix": prefix} if prefix else {},
    )
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    station = f"loop-{uuid.uuid4().hex[:8]}"
    zone = f"zone-{uuid.uuid4().hex[:6]}"
    api = ["--api", endpoints.api_url, "--token", endpoints.token or ""]
    try:
        csv = tmp_path / "stations.csv"
        csv.write_text(
            "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
            "charging_rate_unit,phases,voltage_v,password\n"
            f"{station},{zone},22,22,1.4,W,3,230,s3cret-pw\n"
        )
        await gridctl("stations", "import", str(csv), *api)

        async with charger(settings.ocpp_port, station, password="s3cret-pw") as cp:
            boot = await cp.call(
                call.BootNotification(charge_point_model="loop", charge_point_vendor="gridctl")
            )
            assert boot.status == "Accepted"
            started = await cp.call(
                call.StartTransaction(
                    connector_id=1,
                    id_tag="TAG1",
                    meter_start=0,
                    timestamp=datetime.now(UTC).isoformat(),
                )
            )
            assert started.transaction_id
            meter = asyncio.create_task(_meter_loop(cp, 11000.0))
            try:
                await engine_sees_load(postgres, station)
                signal_id = f"sig-{uuid.uuid4().hex[:8]}"
                await gridctl(
                    "dr",
                    "send",
                    "--zone",
                    zone,
                    "--limit-kw",
                    "5",
                    "--duration",
                    "10m",
                    "--id",
                    signal_id,
                    *api,
                )
                profile = await asyncio.wait_for(cp.profiles.get(), timeout=5.0)
                schedule = profile["charging_schedule"]
                limit = schedule["charging_schedule_period"][0]["limit"]
                unit = schedule["charging_rate_unit"]
                limit_kw = limit / 1000 if unit == "W" else limit * 3 * 230 / 1000
                assert 0 < limit_kw <= 5.0, profile
                assert profile["valid_to"], "every limit carries its own expiry"

                listed = await gridctl("dr", "list", *api)
                assert signal_id[:12] in listed
                await gridctl("dr", "cancel", signal_id, *api)
                cleared = await asyncio.wait_for(cp.clears.get(), timeout=5.0)
                assert cleared is not None
                if prefix:
                    await _only_prefixed_topics_used(runtime, prefix, station, signal_id)
            finally:
                meter.cancel()
                with contextlib.suppress(BaseException):
                    await meter
    finally:
        await runtime.stop()
