"""Drill: 2,000 chargers (re)connect at once while a DR event is active.

``gridctl run`` in a child process (LocalBus with its WAL, a real PostgreSQL), 2,000
stations in 10 zones imported through the API with a password (Basic auth, scrypt
hashes), one CURTAIL signal per zone with an absolute zone limit, so every station has a
desired limit before any charger is online. Then two storms, each charger answering
every SetChargingProfile ``Accepted`` (:mod:`tests.drills.raw`):

1. cold: all 2,000 connect at once to a gateway that has verified no password yet, as
   after a restart: each station costs one scrypt check (~40 ms of CPU here), then
   BootNotification, then the desired limit is pushed (reconciliation);
2. warm: every link is cut at once (a network blip) and all 2,000 reconnect at once.

Each charger must be back (booted) and have received its SetChargingProfile after the
storm began, within the bounds below; gridctl's RSS is sampled throughout and must stay
under the memory target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest

from bench._common import GridctlProcess, p50_p99_max, rss_mib
from tests.drills.raw import Ledger, MeterCharger, finish, run_fleet, stations, wait_for

CHARGERS = 2000
ZONES = 10
PASSWORD = "storm-password"
COLD_BOUND_S = 150.0  # 2,000 scrypt checks at ~40 ms on 2 shared cores, plus boot + profile
WARM_BOUND_S = 45.0
RSS_TARGET_MIB = 1536.0

pytestmark = [pytest.mark.drill, pytest.mark.timeout(420)]


def storm_stations() -> list[SimpleNamespace]:
    return stations(CHARGERS, lambda i: f"storm-{i:04d}", lambda i: f"storm-zone-{i % ZONES:02d}")


async def storm(chargers: list[MeterCharger], since: float, bound: float) -> tuple[bool, str]:
    """Wait until every charger booted and got a SetChargingProfile after ``since``."""

    def reconciled() -> bool:
        return all(
            c.online and c.connected_at and c.connected_at >= since and c.profiles(since)
            for c in chargers
        )

    ok = await wait_for(reconciled, timeout=bound, step=0.5)
    back = [c.connected_at - since for c in chargers if c.connected_at and c.connected_at >= since]
    got = [c.profiles(since)[0].at - since for c in chargers if c.profiles(since)]
    b50, b99, bmax = p50_p99_max(back)
    g50, g99, gmax = p50_p99_max(got)
    text = (
        f"back {len(back)}/{len(chargers)} (p50 {b50:.1f} s, p99 {b99:.1f} s, max {bmax:.1f} s); "
        f"limit re-applied {len(got)}/{len(chargers)} (p50 {g50:.1f} s, p99 {g99:.1f} s, "
        f"max {gmax:.1f} s)"
    )
    return ok, text


async def test_reconnect_storm_all_back_and_reconciled(
    gridctl: Callable[..., GridctlProcess], postgres: str
) -> None:
    gw = gridctl(database_url=postgres, tick=1.0)
    await gw.start()
    specs = storm_stations()
    await gw.import_stations(specs, PASSWORD)
    start = datetime.now(UTC)
    async with gw.api() as api:
        for z in range(ZONES):
            response = await api.post(
                "/v1/signals",
                json={
                    "zone_id": f"storm-zone-{z:02d}",
                    "signal_type": "CURTAIL",
                    "zone_limit_kw": 100.0,
                    "start_ts": start.isoformat(),
                    "end_ts": (start + timedelta(minutes=15)).isoformat(),
                },
            )
            assert response.status_code == 201, response.text
    async with await psycopg.AsyncConnection.connect(postgres, autocommit=True) as conn:

        async def commands() -> int:
            cur = await conn.execute("SELECT count(*) FROM dr_commands")
            return int((await cur.fetchone())[0])  # type: ignore[index]

        deadline = time.monotonic() + 60
        while await commands() < CHARGERS and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert await commands() == CHARGERS, "every station needs a desired limit first"
    await asyncio.sleep(2.0)  # the sink's records reach the gateway's desired state

    peak = {"rss": rss_mib(gw.pid)}
    sampling = asyncio.Event()

    async def sample() -> None:
        while not sampling.is_set():
            peak["rss"] = max(peak["rss"], rss_mib(gw.pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    ledger = Ledger()
    stop = asyncio.Event()
    chargers = [
        MeterCharger(
            gw.ocpp_port,
            s.station_id,
            ledger,
            stop,
            interval=5.0,
            password=PASSWORD,
            boot=True,
            connect_timeout=60.0,
            answer_timeout=30.0,
        )
        for s in specs
    ]
    cold_at = time.time()
    tasks = await run_fleet(chargers, connect_rate=None)
    try:
        cold_ok, cold = await storm(chargers, cold_at, COLD_BOUND_S)
        cold_s = time.time() - cold_at
        rss_cold = peak["rss"]
        warm_ok = False
        warm, warm_s = "not run (cold storm did not finish)", float("nan")
        if cold_ok:
            await asyncio.sleep(2.0)
            warm_at = time.time()
            for c in chargers:
                c.drop_link()
            warm_ok, warm = await storm(chargers, warm_at, WARM_BOUND_S)
            warm_s = time.time() - warm_at
    finally:
        stop.set()
        await finish(tasks)
        sampling.set()
        await sampler
    print(
        f"\n[reconnect storm] {CHARGERS} chargers, {ZONES} zones, a limit per station"
        f"\n  cold (no password verified yet, as after a restart): all reconciled in "
        f"{cold_s:.1f} s (bound {COLD_BOUND_S:.0f} s): {cold}"
        f"\n  warm (every link cut at once): all reconciled in {warm_s:.1f} s "
        f"(bound {WARM_BOUND_S:.0f} s): {warm}"
        f"\n  gridctl RSS peak {peak['rss']:.0f} MiB (after the cold storm {rss_cold:.0f} MiB; "
        f"target {RSS_TARGET_MIB:.0f} MiB)"
        f"\n  chargers: {ledger.summary()}"
    )
    assert cold_ok, f"cold storm not reconciled within {COLD_BOUND_S} s: {cold}"
    assert warm_ok, f"warm storm not reconciled within {WARM_BOUND_S} s: {warm}"
    assert peak["rss"] < RSS_TARGET_MIB
