"""Replay speed: events/s and multiple of real time (prints figures; not a test).

A recording of N chargers (default 1,000, one connector each) sampling every 10 s for
`--minutes` minutes, in zones of 100 stations, with a CURTAIL signal on every zone from
the second minute (every station gets a command, the worst case), replayed with
`pipeline.replay` on a virtual clock stepping by `--tick`. Target: >= 60x real time for
1,000 chargers at 1 s ticks.

    .venv/bin/python bench/replay_speed.py [--chargers 1000] [--minutes 10] [--tick 1]
        [--database-url postgresql://...]   (default: a throw-away embedded PostgreSQL)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
import uuid
from datetime import datetime, timedelta

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline.replay import InputRecord, replay

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")


def recording(chargers: int, minutes: int) -> list[InputRecord]:
    import json

    out: list[InputRecord] = []

    def add(t: float, topic: str, key: str, value: dict) -> None:
        ts = T0 + timedelta(seconds=t)
        out.append(InputRecord(len(out) + 1, topic, key, json.dumps(value).encode(), ts))

    for i in range(chargers):
        sid = f"CP{i:05d}"
        add(0, "config.station_zones", sid, {
            "station_id": sid, "zone_id": f"Z{i // 100:03d}", "max_station_kw": 22.0,
            "contract_max_kw": 22.0, "min_active_kw": 1.4,
        })  # fmt: skip
    for z in range((chargers + 99) // 100):
        add(0, "grid.demand_response", f"sig-{z}", {
            "signal_id": f"sig-{z}", "zone_id": f"Z{z:03d}", "signal_type": "CURTAIL",
            "target_reduction_pct": 20.0, "start_ts": (T0 + timedelta(minutes=2)).isoformat(),
            "end_ts": (T0 + timedelta(hours=2)).isoformat(), "received_ts": T0.isoformat(),
        })  # fmt: skip
    for t in range(0, minutes * 60, 10):
        for i in range(chargers):
            sid = f"CP{i:05d}"
            ts = (T0 + timedelta(seconds=t + i % 10)).isoformat()
            add(t + i % 10, "ocpp.meter_values", sid, {
                "station_id": sid, "connector_id": 1, "session_id": f"{sid}-s",
                "power_kw": 3.0 + i % 8, "event_ts": ts, "received_ts": ts,
                "ocpp_version": "1.6",
            })  # fmt: skip
    out.sort(key=lambda r: r.ts)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--tick", type=float, default=1.0)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    records = recording(args.chargers, args.minutes)
    dsn = None
    if args.database_url:
        name = f"replay_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        params = conninfo_to_dict(args.database_url)
        params["dbname"] = name
        dsn = make_conninfo(**params)
    out = io.StringIO()
    cpu = time.process_time()
    stats = await replay(records, out, tick=timedelta(seconds=args.tick), dsn=dsn)
    cpu = time.process_time() - cpu
    print(
        f"{args.chargers} chargers x {args.minutes} min, tick {args.tick:g} s: "
        f"{stats.records} events, {stats.ticks} ticks, {stats.outputs} sink records in "
        f"{stats.wall_seconds:.1f} s (after server start and migrations) -> "
        f"{stats.events_per_second:,.0f} events/s, "
        f"{stats.speedup:.1f}x real time; Python CPU {cpu:.1f} s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    asyncio.run(main())
