"""OpenADR 3 end to end: a spec-following VTN on loopback, ``gridctl run``'s runtime, a charger.

The VTN (``tests/dr_bridge/oa3_vtn.Vtn3``; the Alliance's reference VTN cannot be had
here) requires ``client_id``/``client_secret`` as form fields and writes timestamps
without offset. A zone-targeted IMPORT_CAPACITY_LIMIT event must reach the charger as a
SetChargingProfile within the cap, and once the event is over, the DEMAND and USAGE
reports it asks for must arrive at the VTN with the zone's measured load (the engine's
``zone_load_minute``: the charger draws a steady 11 kW, it does not obey).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli.runtime import Runtime
from dr_bridge.server import ApiServer
from tests.dr_bridge.oa3_vtn import Vtn3
from tests.loop_kit import (
    api_args,
    charging,
    import_stations,
    loop_settings,
    profile_limit_kw,
    three_phase_station,
)


async def test_capacity_limit_reaches_the_charger_and_the_report_reaches_the_vtn(
    tmp_path: Path, postgres: str
) -> None:
    vtn = Vtn3(client_secret="vtn-s3cret")  # form fields required, naive timestamps
    vtn_server = ApiServer(vtn.app, "127.0.0.1", 0)
    await vtn_server.start()
    secret = tmp_path / "oadr3-secret"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"vtn-s3cret\n")
    os.close(fd)
    settings = loop_settings(
        tmp_path,
        postgres,
        openadr3_vtn_url=vtn_server.url,
        openadr_options={
            "openadr3_client_id": "ven-client",
            "openadr3_client_secret_file": str(secret),
            "openadr3_ven_name": "site-ven",
            "openadr3_poll_interval_s": 0.5,
            "openadr3_report_delay_s": 1.0,
        },
    )
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    station = f"oa3-{uuid.uuid4().hex[:8]}"
    zone = f"zone-{uuid.uuid4().hex[:6]}"
    try:
        await import_stations(tmp_path, api_args(endpoints), [three_phase_station(station, zone)])
        async with charging(settings.ocpp_port, station, 11000.0) as cp:
            await asyncio.sleep(2.0)  # the engine sees fresh load
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
            vtn.put(
                {
                    "id": "ev-loop",
                    "priority": 1,
                    "targets": [{"type": "GROUP", "values": [zone]}],
                    "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
                    "reportDescriptors": [
                        {"payloadType": "DEMAND", "units": "KW"},
                        {"payloadType": "USAGE", "units": "KWH"},
                    ],
                    # naive, like the reference VTN
                    "intervalPeriod": {
                        "start": start.replace(tzinfo=None).isoformat(sep=" "),
                        "duration": "PT12S",
                    },
                    "intervals": [
                        {
                            "id": 0,
                            "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}],
                        }
                    ],
                }
            )
            profile = await asyncio.wait_for(cp.profiles.get(), timeout=10.0)
            assert 0 < profile_limit_kw(profile) <= 5.0, profile
            assert profile["valid_to"], "every limit carries its own expiry"

            async with asyncio.timeout(60):  # liveness bound: event end + delay + a poll
                while len(vtn.reports) < 2:
                    await asyncio.sleep(0.2)
    finally:
        await runtime.stop()
        await vtn_server.stop()
    # the VEN registered itself and its zone before the zone-targeted event was visible
    assert [v["venName"] for v in vtn.vens.values()] == ["site-ven"]
    assert [r["resourceName"] for r in vtn.resources.values()] == [zone]
    values = {}
    for report in vtn.reports:
        [resource] = report["resources"]
        assert resource["resourceName"] == zone and report["eventID"] == "ev-loop"
        [interval] = resource["intervals"]
        values[report["payloadDescriptors"][0]["payloadType"]] = interval["payloads"][0]["values"][
            0
        ]
    # a steady 11 kW over the 12 s interval: 11 kW, 11 * 12 / 3600 = 0.0367 kWh
    assert values == {"DEMAND": 11.0, "USAGE": 0.0367}
