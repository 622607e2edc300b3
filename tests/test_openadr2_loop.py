"""OpenADR 2.0b TELEMETRY_USAGE end to end: a real openleadr VTN, ``gridctl run``'s runtime.

An OCPP charger draws a steady 11 kW; the engine's ``zone_load`` says so; the VTN requests
TELEMETRY_USAGE at 1 s and the oadrUpdateReports it receives must carry that value.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path

import psycopg

from cli.runtime import Runtime
from tests.dr_bridge.oa2_vtn import Vtn, vtn  # noqa: F401  (fixture)
from tests.loop_kit import api_args, charging, import_stations, loop_settings, three_phase_station


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
    settings = loop_settings(
        tmp_path,
        postgres,
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
    try:
        # the new zone makes the VEN offer its report again (recheck every 0.5 s)
        await import_stations(tmp_path, api_args(endpoints), [three_phase_station(station, zone)])
        async with charging(settings.ocpp_port, station, 11000.0):
            async with asyncio.timeout(60):  # liveness bound: registration + samples
                while values[zone][-3:].count(11.0) < 3:
                    await asyncio.sleep(0.2)
            with psycopg.connect(postgres, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT load_kw FROM zone_load WHERE zone_id = %s", (zone,)
                ).fetchone()
    finally:
        await runtime.stop()
    assert row is not None and row[0] == 11.0
    # every sample is the zone's load at that moment: 0 before the first meter value
    # (fresh load of no connector), 11 kW after it, nothing else
    assert set(values[zone]) <= {0.0, 11.0}
    assert values[zone][-3:] == [11.0, 11.0, 11.0]
