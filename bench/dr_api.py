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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from dr_bridge import Bridge, BridgeSettings
from dr_bridge.server import ApiServer
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


class ServerTiming:
    """ASGI wrapper: request received -> response started (201 = confirmed on the bus)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.samples.append(time.perf_counter() - t0)
            await send(message)

        await self.app(scope, receive, timed_send)


async def measure(bus: Bus, tmp: Path, n: int, http: bool) -> tuple[list[float], list[float]]:
    zone = f"bench-zone-{os.getpid()}"
    station = StationZone(
        station_id=f"bench-cs-{os.getpid()}", zone_id=zone, max_station_kw=22, contract_max_kw=22
    )
    await bus.publish(topics.STATION_ZONES, station.station_id, encode(station))
    settings = BridgeSettings(data_dir=tmp / "bridge", tokens=(TOKEN,), port=0)
    async with Bridge(bus, settings, serve_api=False) as bridge:
        timing = ServerTiming(bridge.app)
        server = ApiServer(timing, "127.0.0.1", 0)
        if http:
            await server.start()
            client = httpx.AsyncClient(base_url=server.url)
        else:
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=timing), base_url="http://bridge"
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
        await server.stop()
    return samples, timing.samples[-n:]


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
    print("client: POST round trip; server: request in -> 201 out (confirmed on the bus)")
    print(
        f"{'bus':28} {'client p50':>10} {'p99':>7} {'server p50':>10} {'p99':>7} "
        f"{'max':>7} {'sig/s':>6}  (ms)"
    )
    for name in args.only.split(","):
        label, factory = BUSES[name]
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            try:
                async with factory(tmp) as bus:
                    t0 = time.perf_counter()
                    samples, server = await measure(bus, tmp, args.n, args.http)
                    elapsed = time.perf_counter() - t0
            except Exception as exc:  # a missing broker must not hide the other figures
                print(f"{label:28} skipped: {exc}")
                continue
        print(
            f"{label:28} {pct(samples, 0.5) * 1e3:10.2f} {pct(samples, 0.99) * 1e3:7.2f} "
            f"{pct(server, 0.5) * 1e3:10.2f} {pct(server, 0.99) * 1e3:7.2f} "
            f"{max(server) * 1e3:7.2f} {args.n / elapsed:6.0f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    asyncio.run(main())
