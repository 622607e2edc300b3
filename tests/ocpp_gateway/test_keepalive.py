"""The shared keepalive (ocpp_gateway/keepalive.py) against real websockets peers.

websockets' own per-connection keepalive is off (``ping_interval=None`` to ``serve``), so
these tests fail if ours does not ping: a peer that stops answering would stay connected
for good, and a live one would never have a latency measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import websockets

from ocpp_gateway import Gateway, GatewayConfig
from pipeline.bus import Bus

INTERVAL = 0.3
TIMEOUT = 0.5
CLOSE_TIMEOUT = 0.5


def config(base: GatewayConfig) -> GatewayConfig:
    return replace(base, ping_interval=INTERVAL, ping_timeout=TIMEOUT, close_timeout=CLOSE_TIMEOUT)


async def connect(gw: Gateway, station: str) -> websockets.ClientConnection:
    # the client pings nobody itself: only the gateway's pings are in play
    ws = await websockets.connect(
        f"ws://127.0.0.1:{gw.port}/ocpp/{station}", subprotocols=["ocpp1.6"], ping_interval=None
    )  # type: ignore[list-item]
    async with asyncio.timeout(5):
        while station not in gw.stations:
            await asyncio.sleep(0.01)
    return ws


async def test_silent_peer_is_closed_in_time_and_live_peer_stays(
    bus: Bus, gateway_config: GatewayConfig
) -> None:
    gw = Gateway(bus, config(gateway_config))
    await gw.start()
    try:
        live = await connect(gw, "CP-LIVE")
        silent = await connect(gw, "CP-SILENT")
        # The silent peer's socket is no longer read: no pong goes back (websockets
        # answers pings while it reads), and the gateway's close frame is not seen either.
        silent.transport.pause_reading()
        t0 = time.monotonic()
        # ping at INTERVAL (+ one tick), no pong within TIMEOUT: failed with 1011; the
        # TCP connection ends at once or, as the peer does not close, after CLOSE_TIMEOUT
        deadline = INTERVAL + INTERVAL / 4 + TIMEOUT + CLOSE_TIMEOUT + 0.5
        async with asyncio.timeout(deadline):
            while "CP-SILENT" in gw.stations:
                await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        assert took >= INTERVAL + TIMEOUT - 0.05, f"closed after {took:.2f} s: before its timeout"
        # The live peer answered every ping meanwhile (several intervals) and stays.
        await asyncio.sleep(3 * INTERVAL)
        assert "CP-LIVE" in gw.stations
        server_side = gw.stations["CP-LIVE"].link.ws  # type: ignore[union-attr]
        assert server_side.latency > 0, "no pong measured: the gateway never pinged"
        assert live.state is websockets.State.OPEN
        await live.send('[2,"1","Heartbeat",{}]')
        async with asyncio.timeout(2):
            assert '"currentTime"' in str(await live.recv())
        assert len(gw.server._keepalive or ()) == 1  # the silent one is not pinged any more
        await live.close()
        silent.transport.abort()
        async with asyncio.timeout(2):
            while len(gw.server._keepalive or ()):
                await asyncio.sleep(0.02)
    finally:
        await gw.stop()


async def test_no_keepalive_task_per_connection(bus: Bus, gateway_config: GatewayConfig) -> None:
    """What the module is for: connections add no long-lived task of their own."""
    gw = Gateway(bus, config(gateway_config))
    await gw.start()
    try:
        before = len(asyncio.all_tasks())
        peers = [await connect(gw, f"CP-{i}") for i in range(20)]
        await asyncio.sleep(2 * INTERVAL)  # pings have gone out and come back
        # websockets' handler task per connection, nothing more for keepalive
        assert len(asyncio.all_tasks()) - before <= 20 + 2
        for ws in peers:
            assert ws.state is websockets.State.OPEN
            await ws.close()
    finally:
        await gw.stop()
