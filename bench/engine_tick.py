"""Engine tick time vs active connectors (prints figures; not a test).

For each size: a fresh database with the compiled migrations, stations of 2 connectors in
zones of 100 stations (``--connectors-per-station``, ``--zone-stations``), 10 minutes of
samples every 10 s per connector (loaded with COPY),
an active CURTAIL signal on every zone (the worst case: every station gets a command).
Then steady state: each 1 s tick ingests a tenth of the connectors' samples from the
LocalBus and evaluates every sink. Target: <= 100 ms per tick at 10k connectors.
Wall time depends on what else runs on the machine, so the CPU time of the engine process
plus its PostgreSQL backend (from /proc) is printed too.

    .venv/bin/python bench/engine_tick.py [--sizes 1000,10000,50000] [--ticks 20]
        [--history-hours 0] [--history-period 300] [--profile] [--quiet]
        [--database-url postgresql://...]   (default: a throw-away embedded PostgreSQL)

``--quiet`` loads no signal, so the event is the first after a quiet spell: the caches a
signal fills were empty while the engine planned its statements (how ``gridctl run`` meets
a utility's first CURTAIL of the day).

``--history-hours 1,48`` adds that much recorded history before the last 10 minutes (a
sample per connector every ``--history-period`` seconds) and runs each size once per
value: the steady tick must not grow with history (state bounded, retention following the
SQL). The first tick then also closes every minute of the history (reported apart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline import topics
from pipeline.bus.base import Message
from pipeline.bus.local import LocalBus
from pipeline.engine import Engine, VirtualClock, apply_migrations

T_END = datetime.fromisoformat("2026-01-05T12:10:00+00:00")
HISTORY_S = 600
PERIOD_S = 10
#: the fleet's shape (``--zone-stations``, ``--connectors-per-station``): the default is
#: this bench's historical one; ``bench/dr_latency.py`` runs 10 zones of single-connector
#: chargers, so 10,000 there is ``--sizes 10000 --zone-stations 1000
#: --connectors-per-station 1`` here
ZONE_STATIONS = 100
PER_STATION = 2


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a PostgreSQL backend on this machine, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_db(server: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    params["dbname"] = name
    return make_conninfo(**params)


def load(
    dsn: str,
    connectors: int,
    history_h: float = 0.0,
    history_period: int = 300,
    signals: bool = True,
) -> list[tuple[str, int]]:
    stations = max(1, connectors // PER_STATION)
    conns = [(f"ST{i:06d}", c) for i in range(stations) for c in range(1, PER_STATION + 1)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY station_zones (kafka_key, station_id, zone_id, max_station_kw, "
            "contract_max_kw, min_active_kw) FROM STDIN"
        ) as copy:
            for i in range(stations):
                sid = f"ST{i:06d}"
                copy.write_row((sid.encode(), sid, f"Z{i // ZONE_STATIONS:04d}", 22.0, 22.0, 1.4))
        with cur.copy(
            "COPY meter_values (station_id, connector_id, session_id, power_kw, event_ts, "
            "received_ts, ocpp_version) FROM STDIN"
        ) as copy:
            old = range(-int(history_h * 3600), -HISTORY_S, history_period)
            for t in [*old, *range(-HISTORY_S, 0, PERIOD_S)]:
                ts = T_END + timedelta(seconds=t)
                for n, (sid, c) in enumerate(conns):
                    kw = 3.0 + (n % 8)
                    copy.write_row((sid, c, f"{sid}-{c}", kw, ts, ts, "2.0.1"))
        with cur.copy(
            "COPY dr_signals (signal_id, modification, zone_id, signal_type, "
            "target_reduction_pct, start_ts, end_ts, priority, received_ts) FROM STDIN"
        ) as copy:
            for z in range(-(-stations // ZONE_STATIONS) if signals else 0):
                start = T_END - timedelta(minutes=5)
                copy.write_row(
                    (f"sig-{z}", 0, f"Z{z:04d}", "CURTAIL", 20.0, start,
                     start + timedelta(hours=2), 2, start)
                )  # fmt: skip
        # As if ingested: the watermark follows the last sample (10 s allowed lateness).
        cur.execute(
            "UPDATE gridctl_engine.sources SET watermark_ts = %s WHERE name = 'meter_values'",
            (T_END - timedelta(seconds=PERIOD_S + 10),),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return conns


def sample(sid: str, c: int, ts: datetime, kw: float) -> bytes:
    return json.dumps(
        {"station_id": sid, "connector_id": c, "session_id": f"{sid}-{c}", "power_kw": kw,
         "event_ts": ts.isoformat(), "received_ts": ts.isoformat(), "ocpp_version": "2.0.1"}
    ).encode()  # fmt: skip


def statement_label(sql: str) -> str:
    """A statement of the tick by what it does, for the profile table."""
    if sql.startswith("sink "):
        return sql
    m = re.search(r'"(\w+)__(cache|closed)"', sql)
    if "set_config" in sql or "emitted_until" in sql or ".clock SET" in sql:
        return "bookkeeping (clock, settings, watermarks)"
    if m is None:
        return sql[:60]
    verb = "append closed windows" if m.group(2) == "closed" else "refresh cache"
    if sql.startswith("DELETE") and m.group(2) == "cache" and "WHERE" not in sql:
        verb = "empty cache"
    if sql.startswith("DELETE") and "WHERE" in sql:
        verb = "expire cache rows"
    if sql.startswith("WITH fresh"):
        verb = "refresh cache (latest rows since last tick)"
    return f"{m.group(1)}: {verb}"


def print_profile(
    times: list[tuple[str, float]], connectors: int, what: str = "one steady tick"
) -> None:
    """Per-statement cost of one tick, largest first."""
    by: dict[str, float] = {}
    for sql, seconds in times:
        by[statement_label(sql)] = by.get(statement_label(sql), 0.0) + seconds
    total = sum(by.values())
    print(f"profile of {what} at {connectors} connectors (statements run one by one):")
    for label, seconds in sorted(by.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds * 1000:8.1f} ms  {100 * seconds / total:5.1f} %  {label}")
    print(f"  {total * 1000:8.1f} ms  total", flush=True)


def curtail(signal_id: str, zone: int, now: datetime, modification: int = 0) -> bytes:
    """A CURTAIL of 30 % on zone ``zone`` from ``now`` (deeper than the bench's 20 %); its
    revision ``modification`` 1 asks 40 %."""
    return json.dumps(
        {"signal_id": signal_id, "modification": modification, "zone_id": f"Z{zone:04d}",
         "signal_type": "CURTAIL", "target_reduction_pct": 30.0 + 10 * modification,
         "start_ts": now.isoformat(),
         "end_ts": (now + timedelta(hours=1)).isoformat(), "priority": 2,
         "received_ts": now.isoformat()}
    ).encode()  # fmt: skip


async def run_size(
    server: str,
    connectors: int,
    ticks: int,
    history_h: float = 0.0,
    history_period: int = 300,
    profile: bool = False,
    quiet: bool = False,
) -> None:
    dsn = create_db(server)
    apply_migrations(dsn)
    began = time.perf_counter()
    conns = load(dsn, connectors, history_h, history_period, signals=not quiet)
    setup = time.perf_counter() - began
    bus = LocalBus(retention_records=10_000_000)
    await bus.start()
    clock = VirtualClock(T_END)
    engine = Engine(dsn, bus, clock=clock, catalog_refresh=3600)
    await engine.start(loop=False)
    t = time.perf_counter()
    first = await engine.run_tick()
    first_s = time.perf_counter() - t
    times, ingest_counts, cpus = [], [], []
    pid = engine._require().info.backend_pid
    per_tick = max(1, len(conns) // PERIOD_S)
    for k in range(ticks):
        now = clock.advance(timedelta(seconds=1))
        chunk = [conns[(k * per_tick + j) % len(conns)] for j in range(per_tick)]
        await bus.publish_many(
            [
                Message(topics.METER_VALUES, sid, sample(sid, c, now, 3.0 + (j % 8)))
                for j, (sid, c) in enumerate(chunk)
            ]
        )
        t, c0, b0 = time.perf_counter(), time.process_time(), backend_cpu(pid)
        await engine.run_tick()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c0 + backend_cpu(pid) - b0)
        ingest_counts.append(len(chunk))
    idle = []
    for _ in range(5):
        clock.advance(timedelta(seconds=1))
        t = time.perf_counter()
        await engine.run_tick()
        idle.append(time.perf_counter() - t)
    if profile:
        # One more steady tick, each statement run alone and timed.
        now = clock.advance(timedelta(seconds=1))
        chunk = [conns[(ticks * per_tick + j) % len(conns)] for j in range(per_tick)]
        await bus.publish_many(
            [Message(topics.METER_VALUES, s, sample(s, c, now, 3.0)) for s, c in chunk]
        )
        engine.statement_times = []
        await engine.run_tick()
        print_profile(engine.statement_times, len(conns))
        engine.statement_times = None
    # Applying an event: a new, deeper CURTAIL on every zone changes every station's
    # command in one tick (diff, sink state, outbox, publish), then the next tick ingests
    # the baselines it froze.
    now = clock.advance(timedelta(seconds=1))
    zones = -(-(len(conns) // PER_STATION) // ZONE_STATIONS)
    await bus.publish_many(
        [
            Message(topics.DEMAND_RESPONSE, f"deep-{z}", curtail(f"deep-{z}", z, now))
            for z in range(zones)
        ]
    )
    t, c0, b0 = time.perf_counter(), time.process_time(), backend_cpu(pid)
    applied = await engine.run_tick()
    apply_s = time.perf_counter() - t
    apply_cpu = time.process_time() - c0 + backend_cpu(pid) - b0
    commands = sum(1 for e in applied if e.topic == topics.SET_CHARGING_PROFILE)
    clock.advance(timedelta(seconds=1))
    t = time.perf_counter()
    after = await engine.run_tick()
    after_s = time.perf_counter() - t
    if profile:
        # The same event applied again, profiled (a revision: deeper still, every command).
        now = clock.advance(timedelta(seconds=1))
        await bus.publish_many(
            [
                Message(topics.DEMAND_RESPONSE, f"deep-{z}", curtail(f"deep-{z}", z, now, 1))
                for z in range(zones)
            ]
        )
        engine.statement_times = []
        t = time.perf_counter()
        await engine.run_tick()
        print(f"(profiled, the revision tick took {(time.perf_counter() - t) * 1000:.0f} ms)")
        print_profile(engine.statement_times, len(conns), "a revision of every zone's CURTAIL")
        engine.statement_times = None
    await engine.stop()
    await bus.stop()
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    with psycopg.connect(dsn) as conn:
        raw = conn.execute("SELECT count(*) FROM meter_values").fetchone()
    print(
        f"{len(conns):>7} connectors{', no signal before the event' if quiet else ''}, "
        f"{history_h:g} h history ({raw[0] if raw else 0} raw rows "
        f"after the run) | setup {setup:6.1f} s | first tick {first_s * 1000:7.0f} ms "
        f"({len(first)} records) | steady tick (+{per_tick} samples) median "
        f"{statistics.median(times) * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms"
        f" | tick without new samples {statistics.median(idle) * 1000:6.1f} ms"
        f" | CPU per steady tick (engine + PG backend) {statistics.median(cpus) * 1000:6.1f} ms"
        f" | new CURTAIL on every zone: tick {apply_s * 1000:6.1f} ms (CPU {apply_cpu * 1000:.0f}"
        f" ms), {commands} commands changed of {len(applied)} records; next tick"
        f" {after_s * 1000:6.1f} ms ({len(after)} records)"
        f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        flush=True,
    )


async def main() -> None:
    global ZONE_STATIONS, PER_STATION
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--history-hours", default="0")
    ap.add_argument("--history-period", type=int, default=300)
    ap.add_argument("--database-url")
    ap.add_argument("--profile", action="store_true", help="print each statement's cost")
    ap.add_argument(
        "--quiet",
        action="store_true",
        help="no signal before the event: the event is the first after a quiet spell "
        "(use --ticks 40: plans made, and caches vacuumed, while they were empty)",
    )
    ap.add_argument("--zone-stations", type=int, default=ZONE_STATIONS)
    ap.add_argument("--connectors-per-station", type=int, default=PER_STATION)
    args = ap.parse_args()
    ZONE_STATIONS, PER_STATION = args.zone_stations, args.connectors_per_station
    sizes = [int(s) for s in args.sizes.split(",")]
    hours = [float(h) for h in args.history_hours.split(",")]
    runs = [(n, h) for n in sizes for h in hours]
    if args.database_url:
        for n, h in runs:
            await run_size(
                args.database_url, n, args.ticks, h, args.history_period, args.profile, args.quiet
            )
        return
    from pipeline.embedded_pg import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="gridctl-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        try:
            for n, h in runs:
                await run_size(
                    server.dsn, n, args.ticks, h, args.history_period, args.profile, args.quiet
                )
        finally:
            server.destroy()


if __name__ == "__main__":
    asyncio.run(main())
