"""The status page at ``/`` in headless Chromium, on a real run, with the network off.

``gridctl run``'s runtime in this process, two zones of imported stations, one OCPP 1.6
charger on the ocpp library drawing 7.4 kW in zone-north, a 5 kW cap on zone-north. The
page is opened with the token in its fragment; what it renders is read back: both zones
with their load and cap, the active signal and its state, the stations online and
offline, and a load plot per zone. Without the token it asks for one and shows no data.
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
from pipeline.secrets import hash_password
from tests.cli.test_operator_view import _until
from tests.dr_bridge.browser import browser_page, needs_chromium
from tests.loop_kit import meter_loop as _meter
from tests.ocpp_gateway.chargers import charger

pytestmark = [pytest.mark.timeout(240), needs_chromium]
#: where to keep the screenshot (GRIDCTL_STATUS_SHOT=path), else the test's tmp dir
SHOT = Path(p) if (p := os.environ.get("GRIDCTL_STATUS_SHOT")) else None


@pytest.mark.usefixtures("postgres")
async def test_status_page_shows_zones_signal_and_stations(tmp_path: Path, postgres: str) -> None:
    settings = RunSettings(
        data_dir=tmp_path / "data", database_url=postgres, ocpp_port=free_port(),
        api_port=free_port(), tick=0.5,
    )  # fmt: skip
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    online, offline, south = (f"cp-{uuid.uuid4().hex[:10]}" for _ in range(3))
    headers = {"Authorization": f"Bearer {endpoints.token}"}
    secret = hash_password("s3cret-pw")
    stations = [
        {"station_id": online, "zone_id": "zone-north", "max_station_kw": 22,
         "contract_max_kw": 22, "password_hash": secret},
        {"station_id": offline, "zone_id": "zone-north", "max_station_kw": 11,
         "contract_max_kw": 11, "password_hash": secret},
        {"station_id": south, "zone_id": "zone-south", "max_station_kw": 22,
         "contract_max_kw": 22, "password_hash": secret},
    ]  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=endpoints.api_url, headers=headers) as api:
            assert (await api.post("/v1/stations", json=stations)).status_code == 201
        async with (
            httpx.AsyncClient(base_url=endpoints.api_url, headers=headers) as api,
            charger(settings.ocpp_port, online, password="s3cret-pw") as cp,
        ):
            await cp.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))
            now = datetime.now(UTC).isoformat()
            await cp.call(
                call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now)
            )
            meter = asyncio.create_task(_meter(cp, 7400.0))
            try:

                async def loaded() -> bool:
                    z = (await api.get("/v1/zones/zone-north")).json()
                    return z["load_kw"] == 7.4

                await _until(loaded, "zone-north's load")
                signal_id = f"sig-{uuid.uuid4().hex[:8]}"
                r = await api.post(
                    "/v1/signals",
                    json={"signal_id": signal_id, "zone_id": "zone-north", "zone_limit_kw": 5,
                          "duration": "10m"},
                )  # fmt: skip
                assert r.status_code == 201, r.text
                await asyncio.wait_for(cp.profiles.get(), timeout=15)

                async with browser_page() as (page, refused):
                    await page.goto(f"{endpoints.api_url}/")  # type: ignore[attr-defined]
                    await page.wait_for_selector("#login", state="visible")  # type: ignore[attr-defined]
                    assert await page.locator("#main").is_hidden()  # type: ignore[attr-defined]

                    await page.goto(f"{endpoints.api_url}/#token={endpoints.token}")  # type: ignore[attr-defined]
                    await page.reload()  # type: ignore[attr-defined]
                    north = page.locator('.zone[data-zone="zone-north"]')  # type: ignore[attr-defined]
                    await north.locator(".cap").filter(has_text="cap 5.0 kW").wait_for()
                    north_text = await north.inner_text()
                    south_text = await page.locator('.zone[data-zone="zone-south"]').inner_text()  # type: ignore[attr-defined]
                    signal_row = await page.locator("#signals tbody tr").first.inner_text()  # type: ignore[attr-defined]
                    station_rows = await page.locator("#stations tbody tr").all_inner_texts()  # type: ignore[attr-defined]
                    plots = await page.locator(".zone svg polyline.load").count()  # type: ignore[attr-defined]
                    caps = await page.locator(".zone svg line.cap").count()  # type: ignore[attr-defined]
                    url = page.url  # type: ignore[attr-defined]
                    await page.screenshot(path=str(SHOT or tmp_path / "status.png"), full_page=True)  # type: ignore[attr-defined]
            finally:
                meter.cancel()
                with contextlib.suppress(BaseException):
                    await meter
    finally:
        await runtime.stop()
    assert refused == []
    assert "#token" not in url  # the token does not stay in the address bar
    # zone-north: capacity 22 + 11 = 33 kW, one of two stations online, capped at 5 kW.
    assert "zone-north" in north_text and "cap 5.0 kW" in north_text
    assert "capacity 33.0 kW" in north_text and "1 online / 1 offline" in north_text
    assert "zone-south" in south_text and "no cap" in south_text
    assert "capacity 22.0 kW" in south_text and "0 online / 1 offline" in south_text
    assert signal_id in signal_row and "zone-north" in signal_row and "CURTAIL" in signal_row
    assert "5.0" in signal_row
    by_station = {row.split("\t")[0]: row for row in station_rows}
    assert "online" in by_station[online] and "1.6" in by_station[online]
    assert "never seen" in by_station[offline] and "never seen" in by_station[south]
    assert plots == 2 and caps == 1
    assert (SHOT or tmp_path / "status.png").stat().st_size > 10_000
