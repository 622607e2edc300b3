"""What an operator sees of a running gridctl: stations, zones, status, all from a real run.

``gridctl run``'s runtime in this process (embedded engine on a real PostgreSQL, gateway,
API), an OCPP 1.6 charger on the ocpp library over a real websocket, and the real
``gridctl`` commands in subprocesses that find the database and the API token from the
data dir alone (``run.json``, the token file): no --database-url anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call

from cli.runtime import RunSettings, Runtime
from pipeline.embedded_pg import free_port
from tests.loop_kit import meter_loop as _meter
from tests.ocpp_gateway.chargers import charger

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


async def gridctl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "GRIDCTL_DATABASE_URL": ""},
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"gridctl {' '.join(args)}: {err.decode()}{out.decode()}"
    return out.decode()


async def _until(check, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.2)
    return value


async def test_stations_zones_and_status_from_the_data_dir(tmp_path: Path, postgres: str) -> None:
    data = tmp_path / "data"
    settings = RunSettings(
        data_dir=data, database_url=postgres, ocpp_port=free_port(), api_port=free_port(),
        tick=0.5,
    )  # fmt: skip
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    station, other = f"cp-{uuid.uuid4().hex}", f"cp-{uuid.uuid4().hex}"  # 35 characters
    zone = "zone-north"
    common = ["--api", endpoints.api_url, "--data-dir", str(data)]
    headers = {"Authorization": f"Bearer {endpoints.token}"}
    try:
        (tmp_path / "stations.csv").write_text(
            "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
            "charging_rate_unit,phases,voltage_v,password\n"
            f"{station},{zone},22,11,1.4,W,3,230,s3cret-pw\n"
            f"{other},{zone},22,22,1.4,W,3,230,s3cret-pw\n"
        )
        await gridctl("stations", "import", str(tmp_path / "stations.csv"), *common)
        async with (
            httpx.AsyncClient(base_url=endpoints.api_url, headers=headers) as api,
            charger(settings.ocpp_port, station, password="s3cret-pw") as cp,
        ):
            await cp.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))
            await cp.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
            )
            now = datetime.now(UTC).isoformat()
            await cp.call(
                call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now)
            )
            meter = asyncio.create_task(_meter(cp, 7400.0))
            try:

                async def online() -> list | None:
                    rows = (await api.get("/v1/stations")).json()
                    mine = [r for r in rows if r["station_id"] == station]
                    ok = mine and mine[0]["connection"] == "online" and mine[0]["connectors"]
                    return rows if ok else None

                rows = await _until(online, "the station online")
                by_id = {r["station_id"]: r for r in rows}
                assert by_id[station]["ocpp_version"] == "1.6"
                assert by_id[station]["connectors"] == "1:Charging"
                assert by_id[station]["max_kw"] == 11.0  # min(22, 11)
                assert by_id[other]["connection"] == "never seen"

                async def loaded() -> dict | None:
                    z = (await api.get(f"/v1/zones/{zone}")).json()
                    return z if z["load_kw"] else None

                z = await _until(loaded, "the zone's load")
                assert (z["stations"], z["online"], z["offline"]) == (2, 1, 1)
                assert z["capacity_kw"] == 33.0  # 11 + 22
                assert z["floor_kw"] == 2.8  # 1.4 + 1.4
                assert z["load_kw"] == 7.4
                assert z["cap_kw"] is None
                assert (await api.get("/v1/zones")).json() == [z]
                assert (await api.get("/v1/zones/nowhere")).status_code == 404

                # The CLI, for scripts: full ids, JSON and CSV, no --database-url.
                listed = json.loads(await gridctl("stations", "list", "--json", *common))
                assert {s["station_id"]: s["connection"] for s in listed} == {
                    station: "online",
                    other: "never seen",
                }
                table = await gridctl("stations", "list", *common)
                assert station in table and other in table  # not cut in a pipe
                rows_csv = list(csv.DictReader(io.StringIO(await gridctl(
                    "stations", "list", "--csv", *common
                ))))  # fmt: skip
                assert {r["station_id"] for r in rows_csv} == {station, other}

                status = json.loads(await gridctl("status", "--json", "--data-dir", str(data)))
                assert status["station_counts"] == [
                    {"zone_id": zone, "stations": 2, "online": 1, "offline": 1}
                ]
                assert status["zone_utilisation"][0]["zone_id"] == zone

                signal_id = f"sig-{uuid.uuid4().hex}"
                await gridctl(
                    "dr", "send", "--zone", zone, "--limit-kw", "5", "--duration", "10m",
                    "--id", signal_id, *common,
                )  # fmt: skip
                await asyncio.wait_for(cp.profiles.get(), timeout=10)
                signals = json.loads(await gridctl("dr", "list", "--json", *common))
                assert [s["signal_id"] for s in signals] == [signal_id]
                assert signal_id in await gridctl("dr", "list", *common)

                async def limited() -> str | None:
                    out = await gridctl("query", "station_limits", "--data-dir", str(data))
                    return out if station in out else None

                out = await _until(limited, "the station's limit in station_limits")
                assert signal_id in out
                zone_now = (await api.get(f"/v1/zones/{zone}")).json()
                assert zone_now["cap_kw"] == 5.0 and zone_now["signal_id"] == signal_id
            finally:
                meter.cancel()
                with contextlib.suppress(BaseException):
                    await meter
    finally:
        await runtime.stop()
    # Once the run has stopped, the data dir no longer names a database.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "status", "--data-dir", str(data),
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"no `gridctl run` is using" in err
