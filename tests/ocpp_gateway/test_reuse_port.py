"""Two gateways on one port (SO_REUSEPORT): each delivers to the chargers it holds.

Both gateways run in this process on one in-process bus; the worker processes of
``gridctl run --gateway-workers`` on a Kafka-protocol broker are
``tests/test_whole_loop_workers.py``. Real chargers (the ocpp library, 1.6 and 2.0.1)
connect over real sockets; the kernel picks the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import replace

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from ocpp_gateway import Gateway, GatewayConfig
from pipeline.bus import Bus
from tests.ocpp_gateway.chargers import charger
from tests.ocpp_gateway.test_commands import command

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT"), reason="this OS has no SO_REUSEPORT"
)


async def boot(cp, version: str) -> None:
    if version == "1.6":
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
    else:
        station = {"model": "M", "vendor_name": "V"}
        await cp.call(call201.BootNotification(charging_station=station, reason="PowerUp"))


async def test_two_gateways_share_a_port_and_each_serves_its_own(
    bus: Bus, gateway_config: GatewayConfig
) -> None:
    first = Gateway(bus, replace(gateway_config, reuse_port=True))
    await first.start()
    second = Gateway(bus, replace(gateway_config, reuse_port=True, port=first.port))
    await second.start()
    try:
        assert second.port == first.port
        ids = [(f"CP-RP-{v}-{i}", v) for v in ("1.6", "2.0.1") for i in range(12)]
        async with contextlib.AsyncExitStack() as stack:
            cps = {}
            for sid, version in ids:
                cps[sid] = await stack.enter_async_context(charger(first.port, sid, version))
                await boot(cps[sid], version)
            held = [set(first.stations), set(second.stations)]
            assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(cps)
            # 24 connections all on one socket: probability 2 / 2**24 with an even spread
            assert held[0] and held[1]
            for sid, _ in ids:
                await command(bus, sid, 7.0)
            for sid, version in ids:
                profile = await asyncio.wait_for(cps[sid].profiles.get(), 10)
                key = "charging_schedule"
                schedule = profile[key] if version == "1.6" else profile[key][0]
                assert schedule["charging_schedule_period"][0]["limit"] == 7000.0
            # and no gateway answered for a charger it does not hold
            for gw, mine in ((first, held[0]), (second, held[1])):
                assert set(gw.commands.stations) == mine
    finally:
        await second.stop()
        await first.stop()
