"""Basic auth before the upgrade, fed by config.station_credentials on the bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from ocpp_gateway import Gateway, GatewayConfig
from ocpp_gateway.auth import StationRegistry, parse_basic_auth
from ocpp_gateway.errors import AuthError
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import StationCredential, encode
from pipeline.secrets import hash_password
from tests.ocpp_gateway.chargers import basic

HASH = hash_password("s3cret")


async def credential(bus: Bus, station: str, profile: int = 1, pw_hash: str = HASH) -> None:
    record = StationCredential(station_id=station, password_hash=pw_hash, security_profile=profile)
    await bus.publish(topics.STATION_CREDENTIALS, station, encode(record))  # type: ignore[arg-type]


@pytest.fixture
async def strict(bus: Bus) -> AsyncIterator[Gateway]:
    await credential(bus, "CP-AUTH")
    await credential(bus, "CP-TLS", profile=2)
    gw = Gateway(bus, GatewayConfig(port=0))
    await gw.start()
    yield gw
    await gw.stop()


async def handshake(port: int, station: str, headers: dict | None = None) -> int:
    """101 when the upgrade succeeded, else the HTTP status of the refusal."""
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ocpp/{station}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=headers,
        ) as ws:
            await ws.send('[2, "1", "Heartbeat", {}]')
            assert (await ws.recv()).startswith("[3,")
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize(
    ("station", "headers", "status"),
    [
        ("CP-AUTH", None, 401),
        ("CP-AUTH", basic("CP-AUTH", "wrong"), 401),
        ("CP-AUTH", basic("CP-OTHER", "s3cret"), 401),
        ("CP-AUTH", {"Authorization": "Bearer abc"}, 401),
        ("CP-AUTH", basic("CP-AUTH", "s3cret"), 101),
        ("CP-NOBODY", basic("CP-NOBODY", "s3cret"), 401),  # unknown: as a wrong password
        ("CP-TLS", basic("CP-TLS", "s3cret"), 403),  # profile 2 station on a plain endpoint
    ],
)
async def test_handshake(strict: Gateway, station: str, headers: dict | None, status: int) -> None:
    assert await handshake(strict.port, station, headers) == status


async def test_credentials_added_live_and_removed(strict: Gateway, bus: Bus) -> None:
    assert await handshake(strict.port, "CP-LATE", basic("CP-LATE", "s3cret")) == 401
    await credential(bus, "CP-LATE")
    async with asyncio.timeout(5):
        while "CP-LATE" not in strict.registry.credentials:
            await asyncio.sleep(0.05)
    assert await handshake(strict.port, "CP-LATE", basic("CP-LATE", "s3cret")) == 101
    await bus.publish(topics.STATION_CREDENTIALS, "CP-LATE", None)
    async with asyncio.timeout(5):
        while "CP-LATE" in strict.registry.credentials:
            await asyncio.sleep(0.05)
    assert await handshake(strict.port, "CP-LATE", basic("CP-LATE", "s3cret")) == 401


async def test_allow_unknown_stations(gateway: Gateway) -> None:
    assert await handshake(gateway.port, "CP-ANY") == 101


async def test_registry_core() -> None:
    reg = StationRegistry()
    reg.credentials["A"] = StationCredential(station_id="A", password_hash=HASH)
    header = basic("A", "s3cret")["Authorization"]
    await reg.check("A", header, tls=False)
    await reg.check("A", header, tls=False)  # second time from the verified cache
    with pytest.raises(AuthError) as info:
        await reg.check("A", header, tls=True)
    assert info.value.status == 403
    reg.credentials["A"] = StationCredential(station_id="A", password_hash=hash_password("new"))
    with pytest.raises(AuthError):  # a changed hash invalidates the cache
        await reg.check("A", header, tls=False)
    assert parse_basic_auth("Basic !!!") is None
    assert parse_basic_auth(basic("a", "b:c")["Authorization"]) == ("a", "b:c")


async def test_wss_security_profile_2(bus: Bus, tmp_path) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    await credential(bus, "CP-WSS", profile=2)
    await credential(bus, "CP-PLAIN", profile=1)
    gw = Gateway(bus, GatewayConfig(port=0, certfile=str(cert), keyfile=str(key)))
    await gw.start()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    try:
        url = f"wss://localhost:{gw.port}/ocpp/"
        async with websockets.connect(
            url + "CP-WSS", subprotocols=["ocpp1.6"], ssl=client_ctx,  # type: ignore[list-item]
            additional_headers=basic("CP-WSS", "s3cret"),
        ) as ws:  # fmt: skip
            await ws.send('[2, "1", "Heartbeat", {}]')
            assert (await ws.recv()).startswith('[3,"1"')
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(
                url + "CP-PLAIN", subprotocols=["ocpp1.6"], ssl=client_ctx,  # type: ignore[list-item]
                additional_headers=basic("CP-PLAIN", "s3cret"),
            )  # fmt: skip
        assert info.value.response.status_code == 403  # profile 1 station over TLS
    finally:
        await gw.stop()


async def test_verification_backlog_queues_then_refuses_with_503() -> None:
    def registry(wait: float) -> StationRegistry:
        reg = StationRegistry(max_pending_verifications=2, verify_wait_s=wait)
        for sid in ("A", "B", "C"):
            reg.credentials[sid] = StationCredential(station_id=sid, password_hash=HASH)
        return reg

    async def all_three(reg: StationRegistry) -> list[object]:
        checks = [
            asyncio.create_task(reg.check(sid, basic(sid, "s3cret")["Authorization"], tls=False))
            for sid in ("A", "B", "C")
        ]
        return await asyncio.gather(*checks, return_exceptions=True)

    # 2 slots, 3 checks: the third waits for a slot (default wait 10 s) and passes
    assert await all_three(registry(10.0)) == [None, None, None]
    # a wait no verification fits in: the third is told to come back
    reg = registry(0.001)
    outcomes = await all_three(reg)
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], AuthError) and outcomes[2].status == 503
    assert outcomes[2].retry_after == 5
    assert reg.by_station.wait("C") == 0  # a busy gateway is not the charger's failure
    await reg.check("C", basic("C", "s3cret")["Authorization"], tls=False)  # later: fine
