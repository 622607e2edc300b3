"""OpenADR 2.0b TELEMETRY_USAGE end to end: a real openleadr VTN, ``gridctl run``'s runtime.

An OCPP charger draws a steady 11 kW; the engine's ``zone_load`` says so; the VTN requests
TELEMETRY_USAGE at 1 s and the oadrUpdateReports it receives must carry that value.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from ocpp.v16 import call

from cli.runtime import RunSettings, Runtime
from pipeline.embedded_pg import free_port
from tests.dr_bridge.oa2_vtn import Vtn, vtn  # noqa: F401  (fixture)
from tests.ocpp_gateway.chargers import charger
from tests.test_whole_loop import _meter_loop, gridctl


async def test_telemetry_usage_reports_the_zone_load(
    tmp_path: Path,
    postgres: str,
    vtn: Vtn,  # noqa: F811
) -> None:
    values: dict[str, list[float]] = defaultdict(list)

    def on_register_report(  # type: ignore[no-untyped-def]
        ven_id, resource_id, measurement, unit, scale, min_sampling_interval, max_sampling_interval
    ):
        return (lambda data: values[resource_id].extend(v for _, v in data)), min_sampling_interval

    vtn.server.add_handler("on_register_report", on_register_report)
    settings = RunSettings(
        data_dir=tmp_path / "data",
        database_url=postgres,
        ocpp_port=free_port(),
        api_port=free_port(),
        tick=0.5,
        openadr2_vtn_url=vtn.url,
        openadr2_ven_name="site-ven",
        openadr_options={
            "openadr2_report_min_period_s": 1.0,
            "openadr2_recheck_interval_s": 0.5,
        },
    )
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    station = f"oa2-{uuid.uuid4().hex[:8]}"
    zone = f"zone-{uuid.uuid4().hex[:6]}"
    api = ["--api", endpoints.api_url, "--token", endpoints.token or ""]
    try:
        csv = tmp_path / "stations.csv"
        csv.write_text(
            "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
            "charging_rate_unit,phases,voltage_v,password\n"
            f"{station},{zone},22,22,1.4,W,3,230,s3cret-pw\n"
        )
        # the new zone makes the VEN offer its report again (recheck every 0.5 s)
        await gridctl("stations", "import", str(csv), *api)
        async with charger(settings.ocpp_port, station, password="s3cret-pw") as cp:
            await cp.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))
            await cp.call(
                call.StartTransaction(
                    connector_id=1,
                    id_tag="T",
                    meter_start=0,
                    timestamp=datetime.now(UTC).isoformat(),
                )
            )
            meter = asyncio.create_task(_meter_loop(cp, 11000.0))
            try:
                async with asyncio.timeout(60):  # liveness bound: registration + samples
                    while values[zone][-3:].count(11.0) < 3:
                        await asyncio.sleep(0.2)
                with psycopg.connect(postgres, autocommit=True) as conn:
                    row = conn.execute(
                        "SELECT load_kw FROM zone_load WHERE zone_id = %s", (zone,)
                    ).fetchone()
            finally:
                meter.cancel()
                with contextlib.suppress(BaseException):
                    await meter
    finally:
        await runtime.stop()
    assert row is not None and row[0] == 11.0
    # every sample is the zone's load at that moment: 0 before the first meter value
    # (fresh load of no connector), 11 kW after it, nothing else
    assert set(values[zone]) <= {0.0, 11.0}
    assert values[zone][-3:] == [11.0, 11.0, 11.0]
