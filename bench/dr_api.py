"""DR API latency: signal accepted by the API -> confirmed on the bus, p50/p99 per bus.

    .venv/bin/python bench/dr_api.py [--n 1000] [--only local,wal,kafka] [--http|--asgi]

For each bus a real :class:`dr_bridge.Bridge` (revision store in a temporary directory,
sqlite ``synchronous=FULL``) serves its API. One client POSTs ``--n`` signals one after
the other; ``POST /v1/signals`` answers 201 only once the record is confirmed on the bus,
so the POST round trip *is* "accepted -> confirmed" (plus HTTP). ``--http`` (default) goes
through uvicorn on a loopback port; ``--asgi`` calls the app in process (no sockets), which
isolates the bridge's own cost (validation, store commit with fsync, publish).

Buses: ``LocalBus`` in memory, ``LocalBus`` with its fsynced WAL, ``KafkaBus`` on a Tansu
broker started like the test fixture does (or ``KAFKA_BOOTSTRAP``). Target: p99 <= 20 ms on
LocalBus. Figures depend on machine load; printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from dr_bridge import Bridge, BridgeSettings
from pipeline import topics
from pipeline.bus import Bus, LocalBus
from pipeline.contracts import StationZone, encode

TOKEN = "bench-token"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@asynccontextmanager
async def local_memory(_: Path) -> AsyncIterator[Bus]:
    async with LocalBus() as bus:
        yield bus


@asynccontextmanager
async def local_wal(tmp: Path) -> AsyncIterator[Bus]:
    async with LocalBus(tmp / "bus") as bus:
        yield bus


@asynccontextmanager
async def kafka(_: Path) -> AsyncIterator[Bus]:
    from pipeline.bus import KafkaBus
    from pipeline.bus.tansu import TansuBroker

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if bootstrap:
        async with KafkaBus(bootstrap) as bus:
            yield bus
        return
    with TansuBroker() as broker:
        async with KafkaBus(broker.bootstrap) as bus:
            yield bus


BUSES = {
    "local": ("LocalBus (memory)", local_memory),
    "wal": ("LocalBus (fsynced WAL)", local_wal),
    "kafka": ("KafkaBus (Tansu, loopback)", kafka),
}


async def measure(bus: Bus, tmp: Path, n: int, http: bool) -> list[float]:
    zone = f"bench-zone-{os.getpid()}"
    station = StationZone(
        station_id=f"bench-cs-{os.getpid()}", zone_id=zone, max_station_kw=22, contract_max_kw=22
    )
    await bus.publish(topics.STATION_ZONES, station.station_id, encode(station))
    settings = BridgeSettings(data_dir=tmp / "bridge", tokens=(TOKEN,), port=0)
    async with Bridge(bus, settings, serve_api=http) as bridge:
        if http:
            client = httpx.AsyncClient(base_url=bridge.api_url or "")
        else:
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=bridge.app), base_url="http://bridge"
            )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {"zone_id": zone, "target_reduction_kw": 5, "duration": "15m"}
        async with client:
            for i in range(20):  # warm-up: connections, sqlite pages, producer
                await client.post(
                    "/v1/signals", json={**body, "signal_id": f"w-{i}"}, headers=headers
                )
            samples = []
            for i in range(n):
                t0 = time.perf_counter()
                r = await client.post(
                    "/v1/signals", json={**body, "signal_id": f"s-{i}"}, headers=headers
                )
                samples.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise RuntimeError(f"POST {i}: {r.status_code} {r.text}")
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--only", default="local,wal,kafka")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--http", dest="http", action="store_true", default=True)
    mode.add_argument("--asgi", dest="http", action="store_false")
    args = parser.parse_args()
    via = "HTTP over loopback (uvicorn)" if args.http else "in-process ASGI"
    print(f"DR API: POST /v1/signals -> 201 (confirmed on the bus), n={args.n}, {via}")
    print(f"{'bus':32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'signals/s':>10}")
    for name in args.only.split(","):
        label, factory = BUSES[name]
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            try:
                async with factory(tmp) as bus:
                    t0 = time.perf_counter()
                    samples = await measure(bus, tmp, args.n, args.http)
                    elapsed = time.perf_counter() - t0
            except Exception as exc:  # a missing broker must not hide the other figures
                print(f"{label:32} skipped: {exc}")
                continue
        print(
            f"{label:32} {pct(samples, 0.5) * 1e3:8.2f} {pct(samples, 0.99) * 1e3:8.2f} "
            f"{max(samples) * 1e3:8.2f} {args.n / elapsed:10.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
