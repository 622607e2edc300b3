"""The endpoint: subprotocols, paths, frame size, metrics, reconnects, graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import websockets
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ocpp_gateway import Gateway, GatewayConfig
from ocpp_gateway.server import station_id_from_path
from pipeline.bus import LocalBus, Message
from tests.ocpp_gateway.chargers import charger, now_iso
from tests.ocpp_gateway.conftest import METRICS_TOKEN


@pytest.mark.parametrize(
    ("path", "station"),
    [
        ("/ocpp/CP-1", "CP-1"),
        ("/ocpp/CP%2F1", None),
        ("/ocpp/CP%201?x=1", "CP 1"),
        ("/ocpp/a:b", None),
        ("/ocpp/", None),
        ("/other/CP-1", None),
        ("/ocpp/" + "x" * 49, None),
    ],
)
def test_station_id_from_path(path: str, station: str | None) -> None:
    assert station_id_from_path(path) == station


async def status_of(url: str, subprotocols: list[str] | None) -> tuple[int, str]:
    try:
        async with websockets.connect(url, subprotocols=subprotocols):  # type: ignore[arg-type]
            return 101, ""
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode()


async def test_subprotocol_negotiation_and_refusal(gateway: Gateway) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/CP-S"
    status, body = await status_of(url, ["ocpp2.1"])
    assert status == 400 and "no supported OCPP subprotocol" in body
    assert (await status_of(url, None))[0] == 400
    async with websockets.connect(url, subprotocols=["ocpp1.6", "ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp2.0.1"  # ours, first preference
    assert (await status_of(f"ws://127.0.0.1:{gateway.port}/nope/CP-S", ["ocpp1.6"]))[0] == 404


async def test_oversized_frame_closes_with_1009_and_others_continue(bus, gateway_config) -> None:
    from dataclasses import replace

    gw = Gateway(bus, replace(gateway_config, max_size=4096))
    await gw.start()
    try:
        url = f"ws://127.0.0.1:{gw.port}/ocpp/"
        async with websockets.connect(url + "CP-OTHER", subprotocols=["ocpp1.6"]) as other:  # type: ignore[list-item]
            async with websockets.connect(url + "CP-BIG", subprotocols=["ocpp1.6"]) as big:  # type: ignore[list-item]
                await big.send('[2, "1", "DataTransfer", {"vendorId": "x", "data": "'
                               + "a" * 10_000 + '"}]')  # fmt: skip
                with pytest.raises(ConnectionClosed) as info:
                    await big.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            await other.send('[2, "2", "Heartbeat", {}]')
            assert (await other.recv()).startswith('[3,"2"')
    finally:
        await gw.stop()


async def get_metrics(port: int, authorization: str | None) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = f"Authorization: {authorization}\r\n" if authorization else ""
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
    text = (await reader.read(65536)).decode()
    writer.close()
    return text


async def test_metrics_endpoint_counts_messages(gateway: Gateway) -> None:
    gateway.metrics.command_outcome("sig-secret-1", "SetChargingProfile", "Accepted")
    async with charger(gateway.port, "CP-MET") as cp:
        await cp.call(call.Heartbeat())
        for refused in (None, "Bearer wrong", f"Basic {METRICS_TOKEN}", "Bearer "):
            denied = await get_metrics(gateway.port, refused)
            assert denied.startswith("HTTP/1.1 401") and "sig-secret-1" not in denied
        text = await get_metrics(gateway.port, f"Bearer {METRICS_TOKEN}")
    assert "200 OK" in text
    assert 'gridctl_command_ack_rate{signal_id="sig-secret-1"} 1.0' in text
    assert 'gridctl_ocpp_messages_total{action="Heartbeat",version="1.6"} 1.0' in text
    assert "gridctl_ocpp_connected_stations 1.0" in text
    assert 'gridctl_ocpp_ack_seconds_count{action="Heartbeat"} 1.0' in text


async def test_reconnect_replaces_previous_connection(gateway: Gateway) -> None:
    async with (
        charger(gateway.port, "CP-DUP") as first,
        charger(gateway.port, "CP-DUP") as second,
    ):
        assert await second.call(call.Heartbeat()) is not None
        await asyncio.wait_for(first._connection.wait_closed(), 5)
        assert first._connection.close_reason == "replaced by a new connection"
        assert gateway.stations["CP-DUP"].link.ws.remote_address  # type: ignore[union-attr] is not None


class GatedBus(LocalBus):
    """A LocalBus whose publishes wait for a gate: holds a call in flight on purpose.

    A test double (there is no real peer that stalls on command); everything else is the
    real in-process bus.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def publish_many(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> None:
        if any(m.topic == "ocpp.meter_values" for m in messages):
            self.waiting.set()
            await self.gate.wait()
        await super().publish_many(messages, timeout=timeout)


async def test_graceful_shutdown_finishes_in_flight_calls() -> None:
    bus = GatedBus()
    await bus.start()
    gw = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=True, ack_timeout=10))
    await gw.start()
    try:
        async with charger(gw.port, "CP-GRACE") as cp:
            mv = call.MeterValues(
                connector_id=1,
                meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": "1"}]}],
            )
            pending = asyncio.create_task(cp.call(mv, suppress=False))
            await bus.waiting.wait()
            stopping = asyncio.create_task(gw.stop())
            await asyncio.sleep(0.2)
            assert not stopping.done()  # waits for the in-flight MeterValues
            bus.gate.set()
            assert await pending is not None  # the charger got its CallResult
            await stopping
            await asyncio.wait_for(cp._connection.wait_closed(), 5)
            assert cp._connection.close_code == 1001
    finally:
        await bus.stop()


async def test_stray_answers_are_not_queued(gateway: Gateway) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{gateway.port}/ocpp/CP-STRAY", subprotocols=["ocpp1.6"]
    ) as ws:
        for i in range(50):
            await ws.send(f'[3, "stray-{i}", {{}}]')
            await ws.send(f'[4, "stray-e{i}", "GenericError", "", {{}}]')
        await ws.send('[2, "ok", "Heartbeat", {}]')
        assert (await ws.recv()).startswith('[3,"ok"')
        assert gateway.stations["CP-STRAY"].link.protocol.pending is None  # type: ignore[union-attr]


async def test_handshake_request_not_kept_once_connected(gateway: Gateway) -> None:
    """The upgrade request (its headers carry the charger's password) is let go once the
    station is known; the connection serves calls as before."""
    async with charger(gateway.port, "CP-REQ", password="not-kept-pw") as cp:
        assert await cp.call(call.Heartbeat()) is not None
        (ws,) = gateway.server.connections
        assert ws.request is not None and ws.request.path == "/ocpp/CP-REQ"
        assert not ws.request.headers  # Authorization (the password) among them
        assert gateway.stations["CP-REQ"].link.ws is ws  # type: ignore[union-attr]
        assert await cp.call(call.Heartbeat()) is not None
