"""Authentication under guessing, enumeration and restarts (issue 11), against a running
gateway with real websockets: the answers a charger (or an attacker) actually gets."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from ocpp_gateway import Gateway, GatewayConfig
from ocpp_gateway.backoff import Backoff
from ocpp_gateway.verified import FILE
from pipeline.bus import Bus
from tests.ocpp_gateway.chargers import basic
from tests.ocpp_gateway.test_auth import credential, handshake


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refusal(port: int, station: str, headers: dict | None) -> tuple[int, str, dict]:
    """(status, body, headers) of a refused handshake."""
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ocpp/{station}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=headers,
        ):
            pass
    except InvalidStatus as exc:
        r = exc.response
        return r.status_code, r.body.decode(), {k.lower(): v for k, v in r.headers.raw_items()}
    raise AssertionError("the handshake was accepted")


@pytest.fixture
async def guarded(bus: Bus) -> AsyncIterator[Gateway]:
    await credential(bus, "CP-A")
    await credential(bus, "CP-B")
    gw = Gateway(bus, GatewayConfig(port=0))
    await gw.start()
    yield gw
    await gw.stop()


async def test_unknown_id_and_wrong_password_get_the_same_answer(guarded: Gateway) -> None:
    unknown = await refusal(guarded.port, "CP-NOBODY", basic("CP-NOBODY", "s3cret"))
    wrong = await refusal(guarded.port, "CP-A", basic("CP-A", "guess"))
    assert unknown[0] == wrong[0] == 401
    assert unknown[1] == wrong[1] == "unknown station or wrong password\n"
    drop = ("date",)
    assert {k: v for k, v in unknown[2].items() if k.lower() not in drop} == {
        k: v for k, v in wrong[2].items() if k.lower() not in drop
    }
    # the wrong-profile 403 would tell that an id exists: it comes only after the password
    await credential(guarded.bus, "CP-TLS", profile=2)
    async with asyncio.timeout(5):
        while "CP-TLS" not in guarded.registry.credentials:
            await asyncio.sleep(0.02)
    assert (await refusal(guarded.port, "CP-TLS", basic("CP-TLS", "guess")))[0] == 401
    assert (await refusal(guarded.port, "CP-TLS", basic("CP-TLS", "s3cret")))[0] == 403


async def test_wrong_passwords_back_off_per_station_then_the_right_one_waits(
    guarded: Gateway,
) -> None:
    clock = FakeClock()
    guarded.registry.by_station = Backoff(free=5, base_s=2.0, max_s=300.0, clock=clock)
    for _ in range(6):  # 5 free failures, the 6th starts a 2 s wait
        assert (await refusal(guarded.port, "CP-A", basic("CP-A", "guess")))[0] == 401
    status, body, headers = await refusal(guarded.port, "CP-A", basic("CP-A", "s3cret"))
    assert (status, headers["retry-after"]) == (429, "2")  # not even the right password
    assert "too many failed logins" in body
    # another station is not affected by CP-A's failures
    assert await handshake(guarded.port, "CP-B", basic("CP-B", "s3cret")) == 101
    clock.now += 2.0
    assert (await refusal(guarded.port, "CP-A", basic("CP-A", "guess")))[0] == 401
    assert (await refusal(guarded.port, "CP-A", basic("CP-A", "s3cret")))[2]["retry-after"] == "4"
    clock.now += 4.0
    assert await handshake(guarded.port, "CP-A", basic("CP-A", "s3cret")) == 101
    assert guarded.registry.by_station.wait("CP-A") == 0  # success cleared it


async def test_a_source_spraying_station_ids_backs_off(guarded: Gateway) -> None:
    clock = FakeClock()
    guarded.registry.by_source = Backoff(free=3, base_s=5.0, max_s=60.0, clock=clock)
    for i in range(4):
        assert (await refusal(guarded.port, f"CP-X{i}", basic(f"CP-X{i}", "pw")))[0] == 401
    # the same address, a valid station: it waits too (documented: NAT'd fleets share it)
    status, _, headers = await refusal(guarded.port, "CP-B", basic("CP-B", "s3cret"))
    assert (status, headers["retry-after"]) == (429, "5")
    clock.now += 5.0
    assert await handshake(guarded.port, "CP-B", basic("CP-B", "s3cret")) == 101


async def test_verified_credentials_survive_a_restart_without_hashing(
    bus: Bus, tmp_path: Path
) -> None:
    stations = [f"CP-R{i:02d}" for i in range(20)]
    for sid in stations:
        await credential(bus, sid)
    first = Gateway(bus, GatewayConfig(port=0, state_dir=str(tmp_path / "gw")))
    await first.start()
    try:
        for sid in stations:
            assert await handshake(first.port, sid, basic(sid, "s3cret")) == 101
    finally:
        await first.stop()
    path = tmp_path / "gw" / FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert "s3cret" not in path.read_text()
    # After the restart one slot and no queueing: every full scrypt check beyond the first
    # would be a 503. The whole fleet reconnects at once and gets in.
    second = Gateway(
        bus,
        GatewayConfig(port=0, state_dir=str(tmp_path / "gw"), verify_slots=1, verify_wait_s=0.001),
    )
    await second.start()
    try:
        results = await asyncio.gather(
            *(handshake(second.port, sid, basic(sid, "s3cret")) for sid in stations)
        )
        assert results == [101] * len(stations)
        # a remembered station with a wrong password is still checked in full: 401
        assert (await refusal(second.port, "CP-R00", basic("CP-R00", "guess")))[0] == 401
    finally:
        await second.stop()


async def test_a_station_id_with_a_newline_or_nul_is_not_served_and_not_logged_raw(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ocpp_gateway")
    for station in ("CP%0A2026-12-01%20INFO%20forged", "CP%00nul", "x" * 49, "CP%3A1"):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(
            f"GET /ocpp/{station} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n".encode()
        )
        answer = await reader.read(1000)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 404 ")
    for record in caplog.records:
        assert "\n" not in record.getMessage() and "\x00" not in record.getMessage()
    assert any("\\n2026-12-01" in r.getMessage() for r in caplog.records)


async def test_the_newest_connection_of_a_station_replaces_the_older(guarded: Gateway) -> None:
    first = await websockets.connect(
        f"ws://127.0.0.1:{guarded.port}/ocpp/CP-A",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=basic("CP-A", "s3cret"),
    )
    assert await handshake(guarded.port, "CP-A", basic("CP-A", "s3cret")) == 101
    await asyncio.wait_for(first.wait_closed(), 5)
    assert (first.close_code, first.close_reason) == (1000, "replaced by a new connection")
