"""The whole loop on the production engines: RisingWave runs the migrations verbatim, Kafka
is the bus, gridctl runs only the gateway and the bridge (``--engine risingwave``).

Needs a RisingWave and a Kafka that can reach each other, e.g. from this repository::

    docker compose up -d risingwave kafka kafka-init
    RISINGWAVE_URL=postgresql://root@127.0.0.1:4566/dev KAFKA_BOOTSTRAP=127.0.0.1:29092 \\
    RISINGWAVE_KAFKA_BOOTSTRAP=kafka:9092 .venv/bin/pytest tests/integration

``RISINGWAVE_KAFKA_BOOTSTRAP`` is Kafka's address as RisingWave sees it (default: the same
as ``KAFKA_BOOTSTRAP``). Skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call

from cli.runtime import RunSettings, Runtime
from pipeline.embedded_pg import free_port
from pipeline.migrate import apply
from pipeline.secrets import hash_password
from tests.ocpp_gateway.chargers import charger

pytestmark = pytest.mark.risingwave

RISINGWAVE_URL = os.environ.get("RISINGWAVE_URL")
KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP")


@pytest.fixture(scope="module")
def engines() -> tuple[str, str]:
    if not RISINGWAVE_URL or not KAFKA_BOOTSTRAP:
        pytest.skip(
            "needs RISINGWAVE_URL and KAFKA_BOOTSTRAP (RisingWave and Kafka that see each other)"
        )
    rw_kafka = os.environ.get("RISINGWAVE_KAFKA_BOOTSTRAP", KAFKA_BOOTSTRAP)
    engine = apply(RISINGWAVE_URL, "migrations", {"kafka_bootstrap": rw_kafka})
    assert engine == "risingwave"
    return RISINGWAVE_URL, KAFKA_BOOTSTRAP


async def test_signal_through_risingwave_reaches_the_charger(
    tmp_path: Path, engines: tuple[str, str]
) -> None:
    database_url, bootstrap = engines
    runtime = Runtime(
        RunSettings(
            data_dir=tmp_path,
            engine="risingwave",
            database_url=database_url,
            bus="kafka",
            kafka_bootstrap=bootstrap,
            ocpp_port=free_port(),
            api_port=free_port(),
            api_tokens=["integration-token"],
        )
    )
    endpoints = await runtime.start()
    station, zone = f"rw-{uuid.uuid4().hex[:8]}", f"rwz-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": "Bearer integration-token"}
    try:
        async with httpx.AsyncClient(base_url=endpoints.api_url, headers=headers) as api:
            stations = [
                {
                    "station_id": station,
                    "zone_id": zone,
                    "max_station_kw": 22,
                    "contract_max_kw": 22,
                    "min_active_kw": 1.4,
                    "charging_rate_unit": "W",
                    "phases": 3,
                    "voltage_v": 230,
                    "password_hash": hash_password("pw"),
                }
            ]
            (await api.post("/v1/stations", json=stations)).raise_for_status()
            async with charger(runtime.settings.ocpp_port, station, password="pw") as cp:
                await cp.call(
                    call.BootNotification(charge_point_model="m", charge_point_vendor="v")
                )
                await cp.call(
                    call.StartTransaction(
                        connector_id=1,
                        id_tag="T",
                        meter_start=0,
                        timestamp=datetime.now(UTC).isoformat(),
                    )
                )
                for _ in range(6):
                    await cp.call(
                        call.MeterValues(
                            connector_id=1,
                            meter_value=[
                                {
                                    "timestamp": datetime.now(UTC).isoformat(),
                                    "sampled_value": [
                                        {
                                            "value": "11000",
                                            "measurand": "Power.Active.Import",
                                            "unit": "W",
                                        }
                                    ],
                                }
                            ],
                        )
                    )
                    await asyncio.sleep(1)
                response = await api.post(
                    "/v1/signals",
                    json={
                        "zone_id": zone,
                        "signal_type": "CURTAIL",
                        "zone_limit_kw": 5,
                        "duration": "10m",
                    },
                )
                assert response.status_code == 201, response.text
                profile = await asyncio.wait_for(cp.profiles.get(), timeout=30)
                period = profile["charging_schedule"]["charging_schedule_period"][0]
                assert period["limit"] <= 5000
                with contextlib.suppress(Exception):
                    await api.delete(f"/v1/signals/{response.json()['signal_id']}")
    finally:
        await runtime.stop()
