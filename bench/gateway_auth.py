"""Handshake cost of the gateway's authentication; prints figures, asserts nothing.

Usage::

    .venv/bin/python bench/gateway_auth.py [--tries 30] [--stations 100]

1. Enumeration: median and p90 time of a refused handshake for an unknown station id and
   for a known id with a wrong password (both 401; the two times should be alike, since
   an unknown id is verified against a dummy hash).
2. Restart storm: ``--stations`` stations connect once, the gateway restarts, and all of
   them reconnect at once; time until every handshake succeeded, with the remembered
   verifications (``state_dir``) and without (every station a full scrypt check).

One gateway process-local (LocalBus in memory); the machine may be shared: compare the
figures of one run with each other only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets
from websockets.exceptions import InvalidStatus

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import LocalBus
from pipeline.contracts import StationCredential, encode
from pipeline.secrets import hash_password


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _handshake(port: int, station: str, password: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ocpp/{station}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=_basic(station, password),
            open_timeout=60,
        ):
            status = 101
    except InvalidStatus as exc:
        status = exc.response.status_code
    except (OSError, TimeoutError, websockets.InvalidHandshake):
        status = 0  # no HTTP answer at all
    return status, (time.perf_counter() - t0) * 1000


async def _gateway(bus: LocalBus, state_dir: str | None) -> Gateway:
    gw = Gateway(bus, GatewayConfig(port=0, state_dir=state_dir, ping_interval=None))
    await gw.start()
    return gw


async def main(tries: int, stations: int) -> None:
    bus = LocalBus()
    await bus.start()
    pw_hash = hash_password("right-password")
    ids = [f"bench-{i:04d}" for i in range(stations)]
    for sid in ["known", *ids]:
        cred = StationCredential(station_id=sid, password_hash=pw_hash)
        await bus.publish(topics.STATION_CREDENTIALS, sid, encode(cred))

    gw = await _gateway(bus, None)
    unknown, wrong = [], []
    for i in range(tries):
        # a fresh id each time: back-off is per station id (and per address: reset below)
        s1, t1 = await _handshake(gw.port, f"nobody-{i}", "right-password")
        s2, t2 = await _handshake(gw.port, "known", "wrong-password")
        assert s1 == s2 == 401, (s1, s2)
        unknown.append(t1)
        wrong.append(t2)
        gw.registry.by_station.succeed("known")
        gw.registry.by_source.succeed("addr 127.0.0.1")
    await gw.stop()

    def q(xs: list[float], p: int) -> float:
        return statistics.quantiles(xs, n=100)[p - 1]

    mu, mw = statistics.median(unknown), statistics.median(wrong)
    print(f"## refused handshakes, {tries} each (401 both)")
    print(f"unknown station id:  median {mu:6.1f} ms  p90 {q(unknown, 90):6.1f} ms")
    print(f"wrong password:      median {mw:6.1f} ms  p90 {q(wrong, 90):6.1f} ms")
    print(f"ratio of medians (unknown / wrong): {mu / mw:.2f}")

    print(f"\n## restart storm: {stations} stations reconnect at once after a restart")
    for label, remembered in (("remembered verifications", True), ("full scrypt checks", False)):
        state = tempfile.mkdtemp(prefix="gw-auth-bench-") if remembered else None
        gw = await _gateway(bus, state)
        await asyncio.gather(*(_handshake(gw.port, s, "right-password") for s in ids))
        await gw.stop()  # the restart (the first gateway verified and remembered them)
        gw = await _gateway(bus, state)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_handshake(gw.port, s, "right-password") for s in ids))
        elapsed = time.perf_counter() - t0
        ok = sum(1 for status, _ in results if status == 101)
        worst = max(ms for _, ms in results)
        print(f"{label:26s} {ok}/{stations} in {elapsed:5.2f} s, slowest {worst:7.1f} ms")
        await gw.stop()
    await bus.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tries", type=int, default=30)
    ap.add_argument("--stations", type=int, default=100)
    args = ap.parse_args()
    asyncio.run(main(args.tries, args.stations))
