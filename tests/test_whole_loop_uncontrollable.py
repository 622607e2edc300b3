"""The closed loop with real chargers: one that cannot take a limit, the others make up.

``gridctl run``'s runtime (embedded engine on a real PostgreSQL, gateway, API) in this
process on the in-process bus; three OCPP 1.6 chargers on the ocpp library over real
websockets, each drawing 7 kW; one answers every SetChargingProfile with a CallError
NotImplemented (as a widely used simulator does). Single-phase 230 V stations: minimum
6 A x 230 V -> 1.4 kW. A CURTAIL zone limit of 12 kW gives each 1.4 + (12 - 4.2) / 3 =
4.0 kW; once the third has answered NotSupported its 7 kW is reserved and the two others
get 1.4 + (12 - 7 - 2.8) / 2 = 2.5 kW each, so what the zone draws stays at its cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.routing import on
from ocpp.v16 import call
from ocpp.v16.enums import Action

from cli.runtime import RunSettings, Runtime
from pipeline.embedded_pg import free_port
from tests.ocpp_gateway.chargers import Charger16, charger
from tests.test_whole_loop import _meter_loop, gridctl


class NoProfiles(Charger16):
    """Answers SetChargingProfile with CallError NotImplemented."""

    @on(Action.set_charging_profile)
    async def on_set_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        self.profiles.put_nowait({"connector_id": connector_id, **cs_charging_profiles})
        raise OcppNotImplemented(description="no smart charging here")


def limit_kw(profile: dict) -> float:
    schedule = profile["charging_schedule"]
    limit = schedule["charging_schedule_period"][0]["limit"]
    return limit / 1000 if schedule["charging_rate_unit"] == "W" else limit * 230 / 1000


async def test_a_not_implemented_charger_is_reserved_and_the_others_drop(
    tmp_path: Path, postgres: str
) -> None:
    settings = RunSettings(
        data_dir=tmp_path / "data",
        database_url=postgres,
        bus="local",
        ocpp_port=free_port(),
        api_port=free_port(),
        tick=0.5,
    )
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    zone = f"zone-{uuid.uuid4().hex[:6]}"
    ids = [f"cl-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    api = ["--api", endpoints.api_url, "--token", endpoints.token or ""]
    try:
        csv = tmp_path / "stations.csv"
        csv.write_text(
            "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
            "charging_rate_unit,phases,voltage_v,password\n"
            + "".join(f"{sid},{zone},7.4,7.4,0,W,1,230,pw-{sid}\n" for sid in ids)
        )
        await gridctl("stations", "import", str(csv), *api)
        async with contextlib.AsyncExitStack() as stack:
            cps = []
            for i, sid in enumerate(ids):
                cls = NoProfiles if i == 2 else Charger16
                cp = await stack.enter_async_context(
                    charger(settings.ocpp_port, sid, password=f"pw-{sid}", cls=cls)
                )
                await cp.call(
                    call.BootNotification(charge_point_model="m", charge_point_vendor="v")
                )
                await cp.call(
                    call.StartTransaction(
                        connector_id=1, id_tag="T", meter_start=0, timestamp=_now()
                    )
                )
                meter = asyncio.create_task(_meter_loop(cp, 7000.0))
                stack.callback(meter.cancel)
                cps.append(cp)
            await asyncio.sleep(2.0)  # the engine sees fresh load
            await gridctl(
                "dr", "send", "--zone", zone, "--limit-kw", "12", "--duration", "10m", *api
            )
            first = [await asyncio.wait_for(cp.profiles.get(), timeout=10) for cp in cps[:2]]
            assert [limit_kw(p) for p in first] == [4.0, 4.0]
            # The third charger refused (both purposes): its 7 kW is reserved, the others
            # drop to 2.5 kW each: 2.5 + 2.5 + 7 = 12, the cap.
            second = [await asyncio.wait_for(cp.profiles.get(), timeout=10) for cp in cps[:2]]
            assert [limit_kw(p) for p in second] == [2.5, 2.5]
            listed = await gridctl("dr", "list", *api)
            assert "enforced" in listed
    finally:
        await runtime.stop()


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
