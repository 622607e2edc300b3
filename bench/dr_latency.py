"""End-to-end DR latency: API 201 -> SetChargingProfile at every charger -> zone under cap.

    .venv/bin/python bench/dr_latency.py --sizes 1000,5000,10000 --bus local
    .venv/bin/python bench/dr_latency.py --sizes 5000,10000 --bus local --gateway-workers 2
    .venv/bin/python bench/dr_latency.py --sizes 5000 --profile /tmp/prof   # py-spy too
    .venv/bin/python bench/dr_latency.py --sizes 10000 --bus kafka --lone-gateway  # memory

For each bus and fleet size: ``gridctl run`` in a child process (embedded PostgreSQL, the
engine, the gateway or ``--gateway-workers N`` gateway processes, the API; on ``kafka`` a
fresh Tansu broker as another process), and in this process a lean fleet of real OCPP
chargers (:mod:`bench.lean_fleet`: raw websocket OCPP-J, half 1.6 and half 2.0.1, no
ocpp library, so the load generator stays a small share of the machine), spread over 10
zones. Stations are imported through ``POST /v1/stations``; once every zone reports its
load, one CURTAIL signal per zone goes to ``POST /v1/signals``, all ten at once. Measured:

- per charger: the charger's receipt of its first SetChargingProfile minus the moment its
  zone's signal was sent (just before the POST, so the API's round trip is included and a
  profile that overtakes its own 201 is still counted; both wall clock, one machine);
- per zone: the first poll of the ``zone_load`` view (psql, every 0.2 s) showing the
  zone's load at or under its cap (``dr_zone_caps``) minus that zone's 201;
- readings refused (CallErrors answering MeterValues / TransactionEvent), calls left
  unanswered, CPU of gridctl, its PostgreSQL and its workers, RSS per gateway worker,
  the mean engine tick, and the load generator's own CPU share and CPU per message;
- RSS of every gridctl process once the fleet reports (idle), its peak while the event
  is applied (sampled every 0.2 s) and at the end. With ``--lone-gateway`` (``--bus
  kafka``) the chargers connect to one ``gridctl gateway`` process of their own
  (:class:`bench._common.LoneGateway`, as on another machine) instead of ``run``'s
  gateway, so one worker holding the whole fleet is measured (issue 16: 10,000
  connected chargers under 300 MiB per worker).

Targets (issue 16): p99 <= 0.5 s at 1,000 chargers, <= 1 s at 5,000, <= 2 s at 10,000,
nothing missing and no reading refused. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    TANSU_CLIENT_CONFIG,
    GridctlProcess,
    LoneGateway,
    cpu_s,
    machine,
    p50_p99_max,
    rss_mib,
    start_tansu,
    tree_cpu_s,
)

PASSWORD = "bench-password"
READINGS = ("MeterValues", "TransactionEvent")


TICK = "gridctl_engine_tick_seconds"
STAGES = ("ingest", "ingest_bus", "views", "sink_diff", "publish", "outbox")


@dataclass
class Result:
    bus: str
    size: int
    connect_s: float
    to_charger: list[float] = field(default_factory=list)
    missing: int = 0
    under_cap: dict[str, float] = field(default_factory=dict)
    zones: int = 0
    gridctl_cpu_s: float = 0.0
    tick_s: float = float("nan")  # mean engine tick while the event was applied
    #: per engine stage, (wall s, engine-thread CPU s) summed over the event's ticks
    ticks: int = 0
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)
    gridctl_rss_mib: float = 0.0
    pg_cpu_s: float = float("nan")  # the embedded PostgreSQL (the engine's SQL) meanwhile
    workers_cpu_s: float = 0.0  # the gateway worker processes meanwhile
    workers: int = 1
    worker_rss_mib: list[float] = field(default_factory=list)  # per gateway worker
    #: RSS MiB per gridctl process ("run", "w0", "lone" ...): fleet reporting, before the
    #: signals; the peak of the 0.2 s samples while the event is applied; at the end
    rss_idle: dict[str, float] = field(default_factory=dict)
    rss_peak: dict[str, float] = field(default_factory=dict)
    rss_end: dict[str, float] = field(default_factory=dict)
    load_cpu_s: float = 0.0  # the load generator (this process) during the event
    load_wall_s: float = 0.0
    load_msgs: int = 0
    refused: int = 0  # CallErrors answering MeterValues / TransactionEvent
    call_errors: dict[str, int] = field(default_factory=dict)
    unanswered: dict[str, int] = field(default_factory=dict)
    load_avg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)


async def zone_rows(conn: object) -> list[tuple[str, int, int, float, float | None, str | None]]:
    cur = await conn.execute(  # type: ignore[attr-defined]
        "SELECT l.zone_id, l.stations, l.reporting_stations, l.load_kw, c.cap_kw, c.signal_id "
        "FROM zone_load AS l LEFT JOIN dr_zone_caps AS c ON c.zone_id = l.zone_id "
        "ORDER BY l.zone_id"
    )
    return await cur.fetchall()  # type: ignore[no-any-return]


async def wait_reporting(conn: object, want: int, timeout: float) -> int:
    """Until every zone reports a fresh sample of (nearly) every station, or ``timeout``."""
    deadline = time.monotonic() + timeout
    reporting = 0
    while time.monotonic() < deadline:
        rows = await zone_rows(conn)
        reporting = sum(r[2] for r in rows)
        if reporting >= want:
            break
        await asyncio.sleep(0.5)
    return reporting


async def run_one(bus: str, size: int, args: argparse.Namespace) -> Result:
    import psycopg

    from bench.lean_fleet import CpuWindow, LeanFleet
    from pipeline.secrets import hash_password
    from simulator.stations import generate

    tmp = Path(tempfile.mkdtemp(prefix=f"gridctl-drlat-{bus}-{size}-"))
    broker = start_tansu(tmp) if bus == "kafka" else None
    gw = GridctlProcess(
        tmp / "data",
        bus=bus,
        kafka_bootstrap=broker.bootstrap if broker else None,
        kafka_config=dict(TANSU_CLIENT_CONFIG) if broker else {},
        tick=args.tick,
        log_level=args.log_level,
        gateway_workers=args.gateway_workers,
    )
    fleet: LeanFleet | None = None
    lone = LoneGateway(gw, broker.bootstrap) if broker and args.lone_gateway else None
    try:
        specs = generate(size, zones=args.zones, seed=args.seed, password=PASSWORD)
        password_hash = hash_password(PASSWORD)
        if not args.cold_connect:
            gw.remember_passwords(
                (s.station_id for s in specs), PASSWORD, password_hash,
                args.gateway_workers or 2, instances=[lone.instance] if lone else (),
            )  # fmt: skip
        await gw.start()
        if lone is not None:
            await lone.start()
        fleet = LeanFleet(
            specs,
            lone.ocpp_url if lone else gw.ocpp_url,
            PASSWORD,
            meter_interval=args.meter_interval,
            connect_rate=args.connect_rate,
            seed=args.seed,
        )
        await gw.import_stations(specs, PASSWORD, password_hash)
        zone_of = {s.station_id: s.zone_id for s in specs}
        sent_at: dict[str, float] = {}  # zone -> POSIX time its signal was sent
        first: dict[str, float] = {}  # station -> first SetChargingProfile after the 201

        def on_profile(station_id: str, at: float) -> None:
            zone = zone_of[station_id]
            if zone in sent_at and at >= sent_at[zone]:
                first.setdefault(station_id, at)

        fleet.on_profile = on_profile
        t0 = time.monotonic()
        await fleet.start()
        if not await fleet.wait_connected(timeout=60 + size / 20):
            print(f"  only {len(fleet.connected)}/{size} connected; measuring those", flush=True)
        result = Result(bus, size, time.monotonic() - t0)
        run_workers = gw.gateway_pids()
        gateways = [lone.pid] if lone else run_workers
        result.workers = len(gateways) or 1
        procs = {"run": gw.pid, **{f"w{i}": p for i, p in enumerate(run_workers)}}
        if lone is not None:
            procs[lone.instance] = lone.pid

        def rss_now() -> dict[str, float]:
            return {name: rss_mib(pid) for name, pid in procs.items()}

        print(f"  {bus} {size}: {len(fleet.connected)} connected in {result.connect_s:.1f} s "
              f"({result.workers} gateway worker(s))", flush=True)  # fmt: skip

        async with await psycopg.AsyncConnection.connect(gw.dsn, autocommit=True) as conn:
            reporting = await wait_reporting(
                conn, int(size * 0.98), timeout=args.meter_interval * 3 + 30
            )
            print(f"  {reporting}/{size} stations report load; sending CURTAIL to "
                  f"{args.zones} zones", flush=True)  # fmt: skip
            result.rss_idle = rss_now()
            result.rss_peak = dict(result.rss_idle)
            errors0 = Counter(fleet.call_errors)
            cpu0 = cpu_s(gw.pid)
            pg_pid = gw.postgres_pid()
            pg0 = tree_cpu_s(pg_pid) if pg_pid else 0.0
            workers0 = sum(cpu_s(p) for p in gateways)
            m0 = await gw.metrics()
            zones = sorted({s.zone_id for s in specs})
            start = datetime.now(UTC)
            end = start + timedelta(minutes=10)
            ids: dict[str, str] = {}

            load = {r[0]: r[3] for r in await zone_rows(conn)}

            async def send(api: object, zone: str) -> None:
                if args.amount == "limit":
                    amount = {"zone_limit_kw": round(load[zone] * (1 - args.reduce_pct / 100), 1)}
                else:
                    amount = {"target_reduction_pct": args.reduce_pct}
                body = {
                    "zone_id": zone,
                    "signal_type": "CURTAIL",
                    **amount,
                    "start_ts": start.isoformat(),
                    "end_ts": end.isoformat(),
                    "priority": 2,
                }
                # Taken before the request, not at its 201: with all zones sent at once, a
                # doorbell tick for one zone's signal applies the others already on the bus,
                # and their profiles could reach this process (which also reads the 201s)
                # before their own 201 did; counted from the 201 they were "missing" (198
                # of 1,000 in one run). The figure includes the API's round trip.
                sent_at[zone] = time.time()
                response = await api.post("/v1/signals", json=body)  # type: ignore[attr-defined]
                response.raise_for_status()
                ids[zone] = response.json()["signal_id"]

            spy = start_profile(args, gw.pid, tmp.name) if args.profile else None
            window = CpuWindow(fleet)
            async with gw.api() as api:
                await asyncio.gather(*(send(api, z) for z in zones))
            deadline = time.monotonic() + args.timeout
            under: dict[str, float] = {}
            while time.monotonic() < deadline:
                now = time.time()
                for name, mib in rss_now().items():
                    result.rss_peak[name] = max(result.rss_peak[name], mib)
                for zone_id, _, _, load_kw, cap_kw, signal_id in await zone_rows(conn):
                    if (
                        zone_id in sent_at
                        and zone_id not in under
                        and cap_kw is not None
                        and signal_id == ids.get(zone_id)
                        and load_kw <= cap_kw + 1e-6
                    ):
                        under[zone_id] = now - sent_at[zone_id]
                if len(first) >= len(fleet.connected) and len(under) == len(zones):
                    break
                await asyncio.sleep(0.2)
            result.load_cpu_s, result.load_wall_s, result.load_msgs = window.close()
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
                await asyncio.get_running_loop().run_in_executor(None, spy.wait, 30)
                print(f"  profile: {args.profile}/{tmp.name}.txt (bench/pyspy_top.py reads it)")
            result.load_avg = os.getloadavg()
            result.gridctl_cpu_s = cpu_s(gw.pid) - cpu0
            result.pg_cpu_s = (tree_cpu_s(pg_pid) - pg0) if pg_pid else float("nan")
            result.workers_cpu_s = sum(cpu_s(p) for p in gateways) - workers0
            m1 = await gw.metrics()
            ticks = m1[TICK + "_count"] - m0[TICK + "_count"]
            if ticks:
                result.tick_s = (m1[TICK + "_sum"] - m0[TICK + "_sum"]) / ticks
            result.ticks = int(ticks)
            for name in STAGES:
                wall = f'gridctl_engine_stage_seconds_total{{stage="{name}"}}'
                cpu = f'gridctl_engine_stage_cpu_seconds_total{{stage="{name}"}}'
                result.stages[name] = (
                    m1.get(wall, 0.0) - m0.get(wall, 0.0),
                    m1.get(cpu, 0.0) - m0.get(cpu, 0.0),
                )
            result.rss_end = rss_now()
            result.gridctl_rss_mib = rss_mib(gw.pid)
            result.worker_rss_mib = [rss_mib(p) for p in gateways] or [result.gridctl_rss_mib]
        result.to_charger = [at - sent_at[zone_of[s]] for s, at in first.items()]
        result.missing = size - len(first)
        result.under_cap = under
        result.zones = len(zones)
        errors = Counter(fleet.call_errors)
        errors.subtract(errors0)
        result.call_errors = {f"{a} {c}": n for (a, c), n in errors.items() if n}
        result.refused = sum(n for (a, _), n in errors.items() if a in READINGS)
        result.unanswered = dict(fleet.unanswered())
        if errors0:
            before = {f"{a} {c}": n for (a, c), n in errors0.items()}
            result.notes.append(f"CallErrors before the event (connect, boot): {before}")
        if fleet.stats:
            result.notes.append(f"load generator: {dict(fleet.stats)}")
        return result
    finally:
        if fleet is not None:
            await fleet.stop()
        if lone is not None:
            await lone.stop()
        await gw.stop()
        if broker is not None:
            broker.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  kept {tmp}")


HEADER = (
    f"{'bus':6} {'chargers':>8} {'w':>2} {'first':>7} {'p50':>7} {'p99':>7} {'max':>7} "
    f"{'missing':>7} {'refused':>7} | {'cap p50':>7} {'cap max':>7} {'zones':>5} | "
    f"{'tick s':>6} {'CPU s':>6} {'PG s':>5} {'GW s':>5} {'GW MiB':>9} | "
    f"{'load CPU':>8} {'us/msg':>6} | load avg"
)


def print_row(r: Result) -> None:
    p50, p99, mx = p50_p99_max(r.to_charger)
    c50, _, cmax = p50_p99_max(list(r.under_cap.values()))
    first = min(r.to_charger) if r.to_charger else float("nan")
    share = r.load_cpu_s / r.load_wall_s if r.load_wall_s else float("nan")
    per_msg = r.load_cpu_s / r.load_msgs * 1e6 if r.load_msgs else float("nan")
    rss = "/".join(f"{m:.0f}" for m in r.worker_rss_mib)
    print(f"{r.bus:6} {r.size:>8} {r.workers:>2} {fmt(first)} {fmt(p50)} {fmt(p99)} "
          f"{fmt(mx)} {r.missing:>7} {r.refused:>7} | {fmt(c50)} {fmt(cmax)} "
          f"{len(r.under_cap):>2}/{r.zones:<2} | {r.tick_s:6.2f} {r.gridctl_cpu_s:6.1f} "
          f"{r.pg_cpu_s:5.1f} {r.workers_cpu_s:5.1f} "
          f"{rss:>9} | {share:7.0%} {per_msg:6.0f} | "
          f"{r.load_avg[0]:.2f} {r.load_avg[1]:.2f} {r.load_avg[2]:.2f}")  # fmt: skip
    if r.stages:
        cells = ", ".join(f"{n} {w:.2f}/{c:.2f}" for n, (w, c) in r.stages.items())
        print(f"       engine stages over {r.ticks} ticks, wall/engine-thread CPU s: {cells}")
    if r.rss_idle:
        cells = ", ".join(
            f"{n} {r.rss_idle[n]:.0f}/{r.rss_peak.get(n, float('nan')):.0f}/"
            f"{r.rss_end.get(n, float('nan')):.0f}"
            for n in r.rss_idle
        )
        print(f"       RSS MiB idle/event peak/end: {cells}")
    if r.call_errors:
        print(f"       CallErrors received: {r.call_errors}")
    if r.unanswered:
        print(f"       calls unanswered at the end: {r.unanswered}")
    for note in r.notes:
        print(f"       note: {note}")


def start_profile(args: argparse.Namespace, pid: int, name: str) -> subprocess.Popen[bytes]:
    """py-spy on gridctl run and its gateway workers while the event is applied."""
    spy = Path(sys.executable).with_name("py-spy")
    out = Path(args.profile) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    seconds = str(int(args.timeout) + 5)
    # --gil: only the thread holding the GIL is sampled. gridctl run has three busy threads
    # (the gateway's loop, the engine's, the WAL writer); without it a thread waiting for
    # the GIL is counted where it waits, and trivial lines look hot.
    cmd = [str(spy), "record", "--pid", str(pid), "--subprocesses", "--rate", "100", "--gil",
           "--format", "raw", "--output", str(out), "--duration", seconds]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fmt(seconds: float) -> str:
    return f"{seconds:7.3f}" if seconds == seconds else "    n/a"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--bus", default="local,kafka")
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--tick", type=float, default=1.0, help="engine tick (gridctl default)")
    parser.add_argument("--meter-interval", type=float, default=10.0)
    parser.add_argument("--reduce-pct", type=float, default=30.0)
    parser.add_argument(
        "--amount",
        choices=["limit", "pct"],
        default="limit",
        help="limit: zone_limit_kw = (1 - pct) x the zone's load now; pct: "
        "target_reduction_pct (waits for the baseline minute to close, see docstring)",
    )
    parser.add_argument("--connect-rate", type=float, default=200.0, help="chargers/s ramp-up")
    parser.add_argument("--timeout", type=float, default=60.0, help="s to wait after signals")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--gateway-workers", type=int, default=None, help="gridctl run --gateway-workers"
    )
    parser.add_argument(
        "--cold-connect",
        action="store_true",
        help="a fresh gateway checks every password with scrypt (~40 ms each); by default "
        "its store of verified passwords is written first, as after a restart",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy (100 Hz, GIL holder only, raw format) on gridctl and its workers "
        "during each event, one file per size in DIR; read with bench/pyspy_top.py (it "
        "stops gridctl for every sample: at 10,000 chargers readings get refused under it; "
        "take the latency figures from a run without it)",
    )
    parser.add_argument(
        "--lone-gateway",
        action="store_true",
        help="(--bus kafka) the chargers connect to one `gridctl gateway` process of their "
        "own, not to run's gateway: the memory of one worker holding the whole fleet",
    )
    parser.add_argument("--log-level", default="WARNING", help="of the gridctl process")
    parser.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    buses = args.bus.split(",")
    if args.lone_gateway and buses != ["kafka"]:
        parser.error("--lone-gateway needs --bus kafka (the lone worker meets run on Kafka)")
    print(f"# machine: {machine()}")
    print(f"# gridctl run (child process, engine tick {args.tick} s) + lean fleet in this process; "
          f"{args.zones} zones, CURTAIL -{args.reduce_pct:.0f} % as {args.amount}, meter interval "
          f"{args.meter_interval:.0f} s", flush=True)  # fmt: skip
    results: list[Result] = []
    for bus in buses:
        for size in sizes:
            try:
                results.append(await run_one(bus, size, args))
                print(HEADER)
                print_row(results[-1])
            except Exception as exc:  # one failed size must not hide the others
                print(f"  {bus} {size}: failed: {exc!r}", flush=True)
    print()
    print("API 201 -> SetChargingProfile at the charger (s), and -> zone load under cap (s)")
    print(HEADER)
    for r in results:
        print_row(r)
    print(
        "w: gateway workers; first: the first charger's profile (engine tick wait + "
        "evaluation + publish); p50..max - first: the gateway delivering to every charger; "
        "refused: CallErrors answering MeterValues/TransactionEvent; tick s: mean engine "
        "tick while the event was applied; CPU s: the gridctl run process (workers and "
        "PostgreSQL not included), PG s: the embedded PostgreSQL (the engine's SQL), GW s: "
        "the gateway worker processes, all from the first signal to the end; GW MiB: RSS "
        "per gateway worker (one worker: the whole "
        "gridctl run process, engine and API included; --lone-gateway: the lone worker), "
        "at the end; RSS idle/event peak/end: per process (run, its workers w0.., the lone "
        "worker), once the fleet reports, the highest 0.2 s sample during the event, at the "
        "end; load CPU: this process's CPU / wall "
        "s from the first signal to the end of the measurement, us/msg: its CPU per "
        "message sent or received (the API calls and psql polls included)"
    )
    targets = {1000: 0.5, 5000: 1.0, 10000: 2.0}
    for r in results:
        if r.size in targets:
            p99 = p50_p99_max(r.to_charger)[1]
            ok = p99 <= targets[r.size] and not r.missing and not r.refused
            print(f"target {r.bus} {r.size} x{r.workers}: p99 {p99:.3f} s <= "
                  f"{targets[r.size]} s, none missing, none refused: "
                  f"{'met' if ok else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
