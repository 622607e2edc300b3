"""Command churn: SetChargingProfile commands per station per minute during a DR event.

    .venv/bin/python bench/dr_command_churn.py --stations 20 --minutes 10 --noise 0.05

The real pipeline (migrations compiled on the embedded PostgreSQL, the engine, an
in-process bus) on a virtual clock: ``--stations`` stations in one zone, single- and
three-phase, W and A, each reporting its connector every 10 s; a CURTAIL of 30 % starts
at minute 1 and lasts ``--minutes``. Chargers obey: each draws its latest target (its
baseline load before any), times a uniform meter noise of +-``--noise``. One tick per
``--tick`` seconds of virtual time. Counted: the records the command sink emits per
station (each is what the gateway would turn into a SetChargingProfile; the gateway's
deadband and change interval only remove more), the first one per station apart.
Target (issue 12): at most 1 per station per minute after the first. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import topics
from pipeline.bus.local import LocalBus
from pipeline.embedded_pg import EmbeddedPostgres
from pipeline.engine import Engine, VirtualClock, apply_migrations

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")


def ts(t: float) -> str:
    return (T0 + timedelta(seconds=t)).isoformat()


async def run(dsn: str, stations: int, minutes: int, noise: float, tick: float) -> None:
    apply_migrations(dsn)
    bus = LocalBus()
    await bus.start()
    clock = VirtualClock(T0)
    engine = Engine(dsn, bus, clock=clock)
    await engine.start(loop=False)
    out = bus.subscribe([topics.SET_CHARGING_PROFILE])
    rng = random.Random(12)
    base: dict[str, float] = {}
    for i in range(stations):
        sid = f"B{i:03d}"
        three = i % 2 == 0
        zone = {"station_id": sid, "zone_id": "Z", "max_station_kw": 22.0 if three else 7.4,
                "contract_max_kw": 22.0 if three else 7.4, "phases": 3 if three else 1,
                "charging_rate_unit": "A" if i % 3 == 0 else "W"}  # fmt: skip
        await bus.publish(topics.STATION_ZONES, sid, json.dumps(zone).encode())
        base[sid] = rng.uniform(6.0, 20.0) if three else rng.uniform(2.0, 7.0)
    start, end = 60, 60 + minutes * 60
    signal = {"signal_id": "churn", "zone_id": "Z", "signal_type": "CURTAIL",
              "target_reduction_pct": 30.0, "start_ts": ts(start), "end_ts": ts(end),
              "received_ts": ts(0)}  # fmt: skip
    await bus.publish(topics.DEMAND_RESPONSE, "churn", json.dumps(signal).encode())
    target: dict[str, float] = {}
    sent: Counter[str] = Counter()
    t = 0.0
    wall = time.perf_counter()
    while t < end:
        if int(t) % 10 == 0:
            for sid, kw in base.items():
                draw = min(kw, target.get(sid, kw)) * rng.uniform(1 - noise, 1 + noise)
                sample = {"station_id": sid, "connector_id": 1, "session_id": "s",
                          "power_kw": round(draw, 3), "event_ts": ts(t), "received_ts": ts(t),
                          "ocpp_version": "1.6"}  # fmt: skip
                await bus.publish(topics.METER_VALUES, sid, json.dumps(sample).encode())
        clock.set(T0 + timedelta(seconds=t))
        await engine.run_tick()
        for r in await out.batch(max_records=100_000, timeout=0):
            if r.value is not None and start <= t < end:
                target[r.key or ""] = json.loads(r.value)["target_power_kw"]
                sent[r.key or ""] += 1
        t += tick
    wall = time.perf_counter() - wall
    await engine.stop()
    await bus.stop()
    after_first = [max(0, sent[sid] - 1) for sid in base]
    per_min = [n / minutes for n in after_first]
    print(f"stations {stations}, event {minutes} min, meter noise +-{noise:.0%}, tick {tick:g} s")
    print(f"  commands per station: first 1 each ({sum(1 for s in base if sent[s])} stations)")
    print(
        f"  after the first: total {sum(after_first)}, per station per minute "
        f"mean {sum(per_min) / len(per_min):.3f}, max {max(per_min):.3f} (target <= 1)"
    )
    print(f"  wall {wall:.1f} s for {end / tick:.0f} ticks (shared 2-core machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=20)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--tick", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "pg") as pg:
        asyncio.run(run(pg.dsn, args.stations, args.minutes, args.noise, args.tick))


if __name__ == "__main__":
    main()
