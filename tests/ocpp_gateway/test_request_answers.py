"""Answers to our calls are not schema-checked by the library any more (station.request):
an answer outside the schema must still end as a recorded outcome, never a crash."""

from __future__ import annotations

from dataclasses import replace

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action as Action16

from ocpp_gateway import Gateway, GatewayConfig
from pipeline.bus import Bus
from tests.ocpp_gateway.chargers import Charger16, charger
from tests.ocpp_gateway.test_commands import boot16, command, results


class Odd16(Charger16):
    """Answers SetChargingProfile with a status the 1.6 schema does not know."""

    @on(Action16.set_charging_profile, skip_schema_validation=True)
    async def on_set_profile(self, **kwargs):  # type: ignore[override]
        return call_result.SetChargingProfile(status="Maybe")


async def test_an_unknown_status_is_recorded_as_rejected(
    bus: Bus, gateway_config: GatewayConfig
) -> None:
    gw = Gateway(bus, replace(gateway_config, response_timeout=5.0))
    await gw.start()
    try:
        async with charger(gw.port, "CP-ODD", cls=Odd16) as cp:
            await boot16(cp)
            await command(bus, "CP-ODD", 3.0)
            assert await results(bus, "CP-ODD", 2) == [("SetChargingProfile", "Rejected")] * 2
    finally:
        await gw.stop()
