"""A connection's budget (issue 11): the pure buckets, then a flooding charger against a
running gateway over real websockets while a well-behaved one keeps being answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed

from ocpp_gateway import Gateway, GatewayConfig
from ocpp_gateway.budget import Budget
from ocpp_gateway.errors import ConfigError
from pipeline.bus import Bus
from tests.ocpp_gateway.chargers import charger, now_iso


def test_budget_waits_for_the_debt_of_the_fuller_bucket() -> None:
    b = Budget(msgs_per_s=10, msgs_burst=2, bytes_per_s=1000, bytes_burst=2000, disconnect_s=5)
    assert b.charge(100, 0.0) == 0.0 and b.charge(100, 0.0) == 0.0  # the burst of 2
    assert b.charge(100, 0.0) == pytest.approx(0.1)  # 1 message in debt at 10/s
    assert b.throttled_since == 0.0
    # 0.3 s later: +3 messages (capped at the burst, 2) -> 1 left after this one; bytes
    # 2000 - 300 + 300 = 2000 (capped) - 1900 = 100 left: no wait, the run of waits ends
    assert b.charge(1900, 0.3) == 0.0 and b.throttled_since is None
    # a 2,400-byte frame: 100 + 1000 * 0.1 - 2400 = -2200 bytes at 1000/s -> 2.2 s
    assert b.charge(2400, 0.4) == pytest.approx(2.2)


def test_flooding_is_an_unbroken_run_of_waits() -> None:
    b = Budget(msgs_per_s=1, msgs_burst=1, bytes_per_s=1e6, bytes_burst=1e6, disconnect_s=3)
    t = 0.0
    b.charge(1, t)
    while not b.flooding(t):
        t += b.charge(1, t)  # a charger sending again the moment it is read
        assert t < 10
    assert t == pytest.approx(3.0)


def test_one_whole_frame_always_fits_the_byte_burst() -> None:
    from ocpp_gateway.station import StationContext

    config = GatewayConfig(max_size=128 * 1024, budget_bytes_burst=1024)
    ctx = StationContext(bus=None, config=config, metrics=None, registry=None)  # type: ignore[arg-type]
    budget = ctx.budget("CP")
    assert budget.bytes_burst == 128 * 1024
    assert budget.charge(128 * 1024, 0.0) == 0.0  # a max-size frame passes at once
    assert ctx.budget("CP") is budget  # the station's, not the connection's
    with pytest.raises(ConfigError):
        GatewayConfig(max_size=100)
    assert GatewayConfig().max_size == 64 * 1024


@pytest.fixture
async def tight(bus: Bus) -> AsyncIterator[Gateway]:
    config = GatewayConfig(
        port=0,
        allow_unknown_stations=True,
        budget_msgs_per_s=20,
        budget_msgs_burst=20,
        budget_disconnect_s=1.0,
    )
    gw = Gateway(bus, config)
    await gw.start()
    yield gw
    await gw.stop()


async def flood(port: int, station: str, frame: str, count: int) -> tuple[int, int, str]:
    """Send ``count`` frames without waiting; (answers read, close code, close reason)."""
    answers = 0
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ocpp/{station}",
        subprotocols=["ocpp1.6"],
        max_size=None,  # type: ignore[list-item]
    ) as ws:

        async def send_all() -> None:
            for i in range(count):
                await ws.send(frame.replace("UID", f"u{i}"))

        sender = asyncio.create_task(send_all())
        try:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
                    answers += 1
        except ConnectionClosed:
            pass
        sender.cancel()
        return answers, ws.close_code or 0, ws.close_reason or ""


@pytest.mark.parametrize(
    "frame",
    [
        "not json at all",  # garbage
        json.dumps([2, "UID", "NoSuchAction", {}]),  # unknown actions
        json.dumps([2, "UID", "Heartbeat", {}]),  # valid and cheap
    ],
)
async def test_a_flooding_charger_is_slowed_then_closed_others_are_answered(
    tight: Gateway, frame: str
) -> None:
    acks = 0

    async def good() -> None:
        nonlocal acks
        async with charger(tight.port, "CP-GOOD") as cp:
            while not flooder.done():
                sample = {"timestamp": now_iso(), "sampledValue": [{"value": "5"}]}
                await cp.call(
                    call.MeterValues(connector_id=1, meter_value=[sample]), suppress=False
                )
                acks += 1
                await asyncio.sleep(0.1)

    flooder = asyncio.create_task(flood(tight.port, "CP-FLOOD", frame, 5000))
    await good()
    answers, code, reason = await flooder
    assert code == 1008 and "over budget for 1 s" in reason
    # burst 20 + 20/s for the second it was slowed, and a frame or two in flight
    assert 20 <= answers <= 20 + 20 * 3
    assert acks >= 5  # the good charger was answered all along, never refused
    text = tight.metrics.render().decode()
    assert 'gridctl_ocpp_budget_exceeded_total{outcome="disconnected"} 1.0' in text


async def test_large_frames_spend_the_byte_budget(bus: Bus) -> None:
    config = GatewayConfig(
        port=0,
        allow_unknown_stations=True,
        budget_bytes_per_s=64 * 1024,
        budget_bytes_burst=128 * 1024,
        budget_disconnect_s=1.0,
    )
    gw = Gateway(bus, config)
    await gw.start()
    try:
        big = json.dumps([2, "UID", "DataTransfer", {"vendorId": "v", "data": "x" * 60_000}])
        answers, code, reason = await flood(gw.port, "CP-BIG", big, 500)
        assert code == 1008 and "bytes/s" in reason
        assert answers <= 2 + 3 * 2  # 2 frames of burst, ~1 per second after
    finally:
        await gw.stop()


async def test_a_frame_above_64_kib_is_closed_with_1009(gateway: Gateway) -> None:
    big = json.dumps([2, "1", "DataTransfer", {"vendorId": "v", "data": "x" * 70_000}])
    _, code, _ = await flood(gateway.port, "CP-HUGE", big, 1)
    assert code == 1009


async def test_reconnecting_does_not_refill_the_budget(bus: Bus) -> None:
    config = GatewayConfig(
        port=0,
        allow_unknown_stations=True,
        budget_msgs_per_s=5,
        budget_msgs_burst=50,
        budget_disconnect_s=1.0,
    )
    gw = Gateway(bus, config)
    await gw.start()
    try:
        frame = json.dumps([2, "UID", "Heartbeat", {}])
        first, code, _ = await flood(gw.port, "CP-AGAIN", frame, 5000)
        assert code == 1008 and first >= 50  # the burst of 50, then 5/s for a second
        # Straight back: the budget is the station's, not the connection's. The second or
        # so between the two refilled 5-10 messages, not the burst of 50.
        again, code, _ = await flood(gw.port, "CP-AGAIN", frame, 5000)
        assert code == 1008 and again < 30
    finally:
        await gw.stop()
