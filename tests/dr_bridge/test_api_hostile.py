"""The API never answers 500 to what a client sends, over real HTTP (uvicorn on loopback).

Each case is one the issue saw break the API, some of them for good (a stored Infinity
made every later ``GET /v1/signals`` a 500).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cli import dr_cmd
from dr_bridge import Bridge, BridgeSettings
from tests.dr_bridge.conftest import TOKEN, RecordingBus, add_stations

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def served(bus: RecordingBus, tmp_path: Path) -> AsyncIterator[Bridge]:
    await add_stations(bus, ("cs-1", "zone-a"))
    bridge = Bridge(bus, BridgeSettings(data_dir=tmp_path / "data", tokens=(TOKEN,), port=0))
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


@pytest.fixture
async def http(served: Bridge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{served.port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ) as client:
        yield client


def raw(**fields: Any) -> bytes:
    body: dict[str, Any] = {"zone_id": "zone-a", "duration": "15m", **fields}
    if not {"target_reduction_kw", "target_reduction_pct", "zone_limit_kw"} & set(fields):
        body["target_reduction_kw"] = 5
    return json.dumps(body, allow_nan=True).encode()


def fields(response: httpx.Response) -> set[str]:
    return {d["field"] for d in response.json()["detail"]}


NOW = datetime.now(UTC)
FAR = "9999-12-31T22:00:00Z"

HOSTILE = [
    (raw(zone_limit_kw=float("inf")), "zone_limit_kw"),
    (raw(target_reduction_kw=float("nan")), "target_reduction_kw"),
    (raw(target_reduction_pct=float("-inf")), "target_reduction_pct"),
    (raw(modification=2**63 - 1), "modification"),
    (raw(modification=2**53), "modification"),
    (raw(duration="87600000h"), "duration"),
    (raw(duration=1e20), "duration"),
    (raw(duration=float("nan")), "duration"),
    (raw(duration="999999999999999999999999h"), "duration"),
    (raw(duration="32d"), "duration"),
    (raw(duration=None, start_ts="1970-01-01T00:00:00Z", end_ts="1970-01-01T01:00:00Z"), "end_ts"),
    (raw(start_ts=(NOW - timedelta(hours=1)).isoformat()), "duration"),
    (raw(duration=None, start_ts=FAR, end_ts="9999-12-31T23:00:00Z"), "start_ts"),
    (raw(start_ts="9999-12-31T23:59:00Z"), "start_ts"),
    (raw(start_ts=(NOW + timedelta(days=400)).isoformat()), "start_ts"),
    (raw(duration=None, end_ts=(NOW + timedelta(days=40)).isoformat()), "end_ts"),
    (b"[" * 30_000 + b"]" * 30_000, "body"),
    (b'{"zone_id": ' + b"[" * 40 + b"]" * 40 + b"}", "body"),
]  # fmt: skip


@pytest.mark.parametrize(
    "body,field", HOSTILE, ids=[f"{f}-{i}" for i, (_, f) in enumerate(HOSTILE)]
)
async def test_hostile_signal_is_422_naming_the_field(
    http: httpx.AsyncClient, bus: RecordingBus, body: bytes, field: str
) -> None:
    r = await http.post("/v1/signals", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in fields(r)
    assert bus.published == []
    assert (await http.get("/v1/signals")).status_code == 200


async def test_100k_deep_json_is_422_on_stations_too(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/stations", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 422 and fields(r) == {"body"}


async def test_a_modification_at_the_limit_can_still_be_cancelled(
    http: httpx.AsyncClient,
) -> None:
    r = await http.post("/v1/signals", content=raw(signal_id="top", modification=2**53 - 1))
    assert r.status_code == 201, r.text
    r = await http.delete("/v1/signals/top")
    assert r.status_code == 200 and r.json()["modification"] == 2**53


async def status_of_raw_post(port: int, headers: str, chunks: list[bytes]) -> bytes:
    """Send a POST by hand (httpx cannot declare a length it does not send) and return
    the status code; the server may hang up before the body is all sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\n{headers}\r\n".encode()
        )
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return (await asyncio.wait_for(reader.readline(), 10)).split()[1]
    finally:
        writer.close()


async def test_a_huge_body_is_413_before_it_is_read(
    http: httpx.AsyncClient, served: Bridge
) -> None:
    # Declared 100 MB: refused on the headers, before a byte of body is sent.
    declared = f"Content-Length: {100 * 1024 * 1024}\r\n"
    assert await status_of_raw_post(served.port, declared, []) == b"413"
    # Chunked, no length: refused once 64 KiB have arrived.
    chunk = b"x" * 4096
    chunked = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 50
    encoding = "Transfer-Encoding: chunked\r\n"
    assert await status_of_raw_post(served.port, encoding, chunked) == b"413"
    assert (await http.get("/v1/signals")).status_code == 200


async def test_failed_authentication_is_rate_limited_per_client(served: Bridge) -> None:
    url = f"http://127.0.0.1:{served.port}/v1/signals"
    async with httpx.AsyncClient(timeout=10) as client:
        codes = [
            (await client.get(url, headers={"Authorization": f"Bearer wrong-{i}"})).status_code
            for i in range(12)
        ]
        assert codes == [401] * 10 + [429] * 2
        # Backed off: even the right token waits, so a guess cannot be confirmed now.
        right = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0


async def test_an_undecodable_stored_signal_is_reported_and_breaks_nothing(
    http: httpx.AsyncClient, served: Bridge, tmp_path: Path
) -> None:
    assert (await http.post("/v1/signals", content=raw(signal_id="fine"))).status_code == 201
    # A revision as an older gridctl stored it: Infinity, no amount, unreadable now.
    bad = {
        "signal_id": "poisoned", "modification": 0, "zone_id": "zone-a",
        "signal_type": "CURTAIL", "zone_limit_kw": "Infinity",
        "start_ts": NOW.isoformat(), "end_ts": (NOW + timedelta(hours=1)).isoformat(),
        "priority": 2, "source": "api", "received_ts": NOW.isoformat(),
    }  # fmt: skip
    with sqlite3.connect(tmp_path / "data" / "dr-revisions.sqlite3") as db:
        db.execute(
            "INSERT INTO signals (signal_id, modification, source, ext_id, record, confirmed) "
            "VALUES ('poisoned', 0, 'api', 'poisoned', ?, 1)",
            (json.dumps(bad).encode().replace(b'"Infinity"', b'"x"'),),
        )
    for query in ("", "?active=true"):
        r = await http.get(f"/v1/signals{query}")
        assert r.status_code == 200
        by_id = {s["signal_id"]: s for s in r.json()}
        assert by_id["fine"]["zone_id"] == "zone-a"
        assert by_id["poisoned"]["modification"] == 0
        assert "zone_limit_kw" in by_id["poisoned"]["unreadable"]
    one = await http.get("/v1/signals/poisoned")
    assert one.status_code == 409 and one.json()["signal_id"] == "poisoned"
    assert (await http.delete("/v1/signals/poisoned")).status_code == 409

    # gridctl dr list shows both, the bad one by id.
    app = typer.Typer()
    dr_cmd.register(app)
    result = await asyncio.to_thread(  # the CLI is synchronous; the server needs this loop
        CliRunner().invoke,
        app,
        ["dr", "list", "--all", "--api", str(http.base_url).rstrip("/"), "--token", TOKEN],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "poisoned" in result.output and "UNREADABLE" in result.output
    assert "fine" in result.output

    # The way out: send the signal again; the new revision replaces the unreadable one.
    again = await http.post("/v1/signals", content=raw(signal_id="poisoned", zone_limit_kw=30))
    assert again.status_code == 201, again.text
    assert (await http.get("/v1/signals/poisoned")).json()["zone_limit_kw"] == 30
    assert all("unreadable" not in s for s in (await http.get("/v1/signals")).json())
