"""``gridctl run`` after kill -9 and a damaged bus log: it comes up, every time, and reads on.

A real ``gridctl run`` child process (embedded PostgreSQL, LocalBus on disk). What the
issue saw: after kill -9 and bytes cut off ``bus/bus.log`` the first restart appended onto
the torn line and the second could not start; with records cut off the log the engine's
stored offset was ahead of it and new records were skipped without a word.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from bench._common import GridctlProcess

pytestmark = pytest.mark.timeout(300)

HASH = "scrypt$" + "0" * 32 + "$" + "1" * 64


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[GridctlProcess]:
    proc = GridctlProcess(tmp_path / "data")
    try:
        yield proc
    finally:
        await proc.stop()


async def add_station(gw: GridctlProcess, station_id: str) -> None:
    row = {
        "station_id": station_id,
        "zone_id": "rec-zone",
        "max_station_kw": 11.0,
        "contract_max_kw": 11.0,
        "password_hash": HASH,
    }
    async with gw.api() as api:
        response = await api.post("/v1/stations", json=[row])
    assert response.status_code == 201, response.text


async def engine_stations(gw: GridctlProcess, expected: set[str]) -> set[str]:
    """Station ids in the engine's table, once ``expected`` are there (or after 30 s)."""
    got: set[str] = set()
    for _ in range(150):
        async with await psycopg.AsyncConnection.connect(gw.dsn) as conn:
            cur = await conn.execute("SELECT station_id FROM station_zones")
            got = {r[0] for r in await cur.fetchall()}
        if expected <= got:
            break
        await asyncio.sleep(0.2)
    return got


async def test_kill9_and_torn_or_short_log_restarts_twice_and_reads_on(
    gw: GridctlProcess,
) -> None:
    await gw.start()
    for sid in ("rec-1", "rec-2", "rec-3"):
        await add_station(gw, sid)
    assert await engine_stations(gw, {"rec-1", "rec-2", "rec-3"}) >= {"rec-1", "rec-2", "rec-3"}
    gw.kill9()

    # Lose the last station's two records (zone, credential) and leave a torn write.
    wal = gw.data_dir / "bus" / "bus.log"
    lines = wal.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[:-2])
    wal.write_bytes(kept + lines[-2][:100])
    await gw.start()  # restart 1
    log = gw.log_tail(20_000)
    assert f"bus log {wal}: torn tail cut at offset {len(kept)} (100 bytes dropped" in log
    assert "is beyond the end of the bus" in log  # the engine's offset, moved back
    await add_station(gw, "rec-4")  # lands where the lost records were
    assert "rec-4" in await engine_stations(gw, {"rec-4"})
    gw.kill9()

    # Cut 100 bytes off the end again: into the middle of the last record.
    size = wal.stat().st_size
    with open(wal, "r+b") as f:
        f.truncate(size - 100)
    await gw.start()  # restart 2: must come up again
    await add_station(gw, "rec-5")
    assert "rec-5" in await engine_stations(gw, {"rec-5"})
    await gw.stop()
    assert gw.log_tail(50_000).count("cannot start") == 0
