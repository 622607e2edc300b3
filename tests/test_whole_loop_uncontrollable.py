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
from ocpp.v16.enums import Action

from cli.runtime import Runtime
from tests.loop_kit import (
    api_args,
    charging,
    gridctl,
    import_stations,
    loop_settings,
    profile_limit_kw,
)
from tests.ocpp_gateway.chargers import Charger16


class NoProfiles(Charger16):
    """Answers SetChargingProfile with CallError NotImplemented."""

    @on(Action.set_charging_profile)
    async def on_set_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        self.profiles.put_nowait({"connector_id": connector_id, **cs_charging_profiles})
        raise OcppNotImplemented(description="no smart charging here")


async def test_a_not_implemented_charger_is_reserved_and_the_others_drop(
    tmp_path: Path, postgres: str
) -> None:
    settings = loop_settings(tmp_path, postgres, bus="local")
    runtime = Runtime(settings)
    endpoints = await runtime.start()
    zone = f"zone-{uuid.uuid4().hex[:6]}"
    ids = [f"cl-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    api = api_args(endpoints)
    try:
        await import_stations(
            tmp_path, api, [f"{sid},{zone},7.4,7.4,0,W,1,230,pw-{sid}" for sid in ids]
        )
        async with contextlib.AsyncExitStack() as stack:
            cps = []
            for i, sid in enumerate(ids):
                cls = NoProfiles if i == 2 else Charger16
                cps.append(
                    await stack.enter_async_context(
                        charging(settings.ocpp_port, sid, 7000.0, password=f"pw-{sid}", cls=cls)
                    )
                )
            await asyncio.sleep(2.0)  # the engine sees fresh load
            await gridctl(
                "dr", "send", "--zone", zone, "--limit-kw", "12", "--duration", "10m", *api
            )
            first = [await asyncio.wait_for(cp.profiles.get(), timeout=10) for cp in cps[:2]]
            assert [profile_limit_kw(p, phases=1) for p in first] == [4.0, 4.0]
            # The third charger refused (both purposes): its 7 kW is reserved, the others
            # drop to 2.5 kW each: 2.5 + 2.5 + 7 = 12, the cap.
            second = [await asyncio.wait_for(cp.profiles.get(), timeout=10) for cp in cps[:2]]
            assert [profile_limit_kw(p, phases=1) for p in second] == [2.5, 2.5]
            listed = await gridctl("dr", "list", *api)
            assert "enforced" in listed
    finally:
        await runtime.stop()
