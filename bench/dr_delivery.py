"""Command delivery alone: N commands on the bus -> SetChargingProfile at N chargers.

    .venv/bin/python bench/dr_delivery.py --chargers 2000,5000
    .venv/bin/python bench/dr_delivery.py --chargers 5000 --rounds 3 --profile DIR  # py-spy

What ``bench/dr_latency.py`` measures end to end minus the engine: the gateway
(:class:`ocpp_gateway.Gateway`, as ``gridctl run`` wires it) runs in a child process on
``LocalBus(path)``, the fsynced write-ahead log with its group-commit thread (the default
bus), with every station's zone on the bus (half ``A``, half ``W``; 1- and 3-phase, from
:func:`simulator.stations.generate`). In this process a lean fleet of N real OCPP chargers
(:mod:`bench.lean_fleet`: raw websockets, half 1.6 half 2.0.1) connects, boots, starts a
transaction and reports every 10 s; each reports its new draw at once when its limit
changes, as real chargers do, so the gateway handles those readings during delivery too.

Each round, the child publishes one ``SetChargingProfileCommand`` per station in one
``publish_many`` (a new signal and end each round, so the policy sends every one), as the
engine's sink does. Measured per round:

- per charger: its receipt of the SetChargingProfile minus the publish (wall clock, one
  machine): first, p50, p99, last; the first->p99 span is the gateway's delivery cost;
- the CommandResults on ``ocpp.command_results`` (durable: LocalBus returns a publish
  only after its fsync) and the last one's append time minus the publish;
- the gateway process's CPU (all threads) and its loop thread's CPU, per command, from
  the publish until the last result; the load average.

No engine and no PostgreSQL run here: the figures are the gateway's alone. Prints
figures; asserts nothing. Run it under the shared bench lock.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, p50_p99_max

PASSWORD = "bench-password"


# -- the gateway (child process) ----------------------------------------------------------
def _child(conn: Any, zones: list[dict[str, Any]], data_dir: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)  # dr_latency's gridctl --log-level default
    asyncio.run(_child_async(conn, zones, data_dir))


async def _child_async(conn: Any, zones: list[dict[str, Any]], data_dir: str) -> None:
    from cli import gc_settings
    from ocpp_gateway import Gateway, GatewayConfig
    from pipeline import topics
    from pipeline.bus import LocalBus, Message
    from pipeline.contracts import (
        CommandResult,
        SetChargingProfileCommand,
        StationZone,
        decode,
        encode,
    )

    bus = LocalBus(Path(data_dir) / "bus")
    await bus.start()
    await bus.publish_many(
        [Message(topics.STATION_ZONES, z["station_id"], encode(StationZone(**z))) for z in zones]
    )
    gw = Gateway(
        bus,
        GatewayConfig(port=0, allow_unknown_stations=True, state_dir=str(Path(data_dir) / "gw")),
    )
    await gw.start()
    gc_settings.settle()  # as gridctl run does once everything is started
    if os.environ.get("BENCH_GC0"):  # before/after: BENCH_GC0=700 is CPython's default
        gc.set_threshold(int(os.environ["BENCH_GC0"]), *gc.get_threshold()[1:])
    gc_time = _GcTime()
    loop_thread = threading.get_ident()
    results = bus.subscribe([topics.COMMAND_RESULTS], group=None)
    conn.send((gw.port, os.getpid()))
    loop = asyncio.get_running_loop()
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        if msg[0] == "stop":
            break
        if msg[0] == "publish":
            _, round_no = msg
            now = datetime.now(UTC)
            end = now + timedelta(minutes=10, seconds=round_no)
            share = 0.7 - 0.1 * (round_no % 4)
            batch = [
                Message(
                    topics.SET_CHARGING_PROFILE,
                    z["station_id"],
                    encode(
                        SetChargingProfileCommand(
                            station_id=z["station_id"],
                            target_power_kw=round(z["max_station_kw"] * share, 2),
                            signal_id=f"bench-{round_no}",
                            dr_end_ts=end,
                            command_ts=now,
                        )
                    ),
                )
                for z in zones
            ]
            gc_time.reset()
            cpu0, thread0 = time.process_time(), _thread_cpu(loop_thread)
            t0 = time.time()
            await bus.publish_many(batch)
            conn.send((t0, cpu0, thread0))
        elif msg[0] == "results":
            _, want, timeout = msg
            deadline = time.monotonic() + timeout
            last_ms = 0
            statuses: Counter[str] = Counter()
            got = 0
            while got < want and time.monotonic() < deadline:
                for r in await results.batch(100_000, timeout=0.2):
                    result = decode(CommandResult, r.value, topic=r.topic)  # type: ignore[arg-type]
                    if result.action == "Clock":  # the result clock's marks (clock.py)
                        continue
                    got += 1
                    last_ms = max(last_ms, r.timestamp_ms)
                    statuses[f"{result.action} {result.status}"] += 1
            conn.send((got, last_ms / 1000.0, dict(statuses), gc_time.figures()))
        elif msg[0] == "census":
            objects = gc.get_objects()
            kinds = Counter(type(o).__qualname__ for o in objects)
            conn.send((len(objects), gc.get_freeze_count(), kinds.most_common(25)))
            del objects
        elif msg[0] == "cpu":
            conn.send((time.process_time(), _thread_cpu(loop_thread)))
    await results.close()
    await gw.stop()
    await bus.stop()
    conn.send("stopped")


class _GcTime:
    """Time the cyclic GC stopped this process, per generation, since :meth:`reset`."""

    def __init__(self) -> None:
        self.t0 = 0.0
        self.reset()
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self.t0
            self.count[info["generation"]] += 1

    def figures(self) -> str:
        return ", ".join(
            f"gen{g} {n}x {s * 1000:.0f} ms"
            for g, (n, s) in enumerate(zip(self.count, self.seconds, strict=True))
        )


def _thread_cpu(tid: int) -> float:
    """CPU seconds of one thread of this process (``tid``: its ``threading`` ident)."""
    native = {t.ident: t.native_id for t in threading.enumerate()}[tid]
    fields = Path(f"/proc/self/task/{native}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the fleet (this process) ---------------------------------------------------------------
async def run_size(size: int, args: argparse.Namespace) -> None:
    from bench.lean_fleet import CpuWindow, LeanFleet
    from simulator.stations import generate

    specs = generate(size, zones=10, seed=args.seed, password=PASSWORD)
    zones = [
        {"station_id": s.station_id, "zone_id": s.zone_id, "max_station_kw": s.max_station_kw,
         "contract_max_kw": s.contract_max_kw, "min_active_kw": s.min_active_kw,
         "charging_rate_unit": s.charging_rate_unit, "phases": s.phases,
         "voltage_v": s.voltage_v}
        for s in specs
    ]  # fmt: skip
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    tmp = tempfile.mkdtemp(prefix=f"gridctl-delivery-{size}-")
    proc = ctx.Process(target=_child, args=(theirs, zones, tmp))
    proc.start()
    loop = asyncio.get_running_loop()

    async def ask(*msg: Any) -> Any:
        ours.send(msg)
        return await loop.run_in_executor(None, ours.recv)

    port, pid = await loop.run_in_executor(None, ours.recv)
    fleet = LeanFleet(
        specs, f"ws://127.0.0.1:{port}/ocpp", PASSWORD, connect_rate=args.connect_rate,
        seed=args.seed,
    )  # fmt: skip
    got: dict[str, float] = {}
    fleet.on_profile = lambda sid, at: got.setdefault(sid, at)
    t_connect = time.monotonic()
    await fleet.start()
    ok = await fleet.wait_connected(timeout=60 + size / 50)
    took = time.monotonic() - t_connect
    note = "" if ok else " (not all)"
    print(f"  {size} chargers: {len(fleet.connected)} connected in {took:.1f} s{note}", flush=True)
    # the reconcile of each new connection (capability query) is over before we measure
    await asyncio.sleep(args.settle)
    spy = None
    for round_no in range(args.rounds):
        got.clear()
        errors0 = Counter(fleet.call_errors)
        if args.profile and round_no == args.rounds - 1:
            out = Path(args.profile) / f"delivery-{size}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "--rate",
                 "200", "--format", "raw", "--pid", str(pid), "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1.0)
        window = CpuWindow(fleet)
        t0, cpu0, thread0 = await ask("publish", round_no)
        deadline = time.monotonic() + args.timeout
        want = len(fleet.connected)
        while len(got) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        n_results, last_result, statuses, gc_figures = await ask("results", want, 20.0)
        cpu1, thread1 = await ask("cpu")
        load_cpu, load_wall, _ = window.close()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await loop.run_in_executor(None, spy.wait, 30)
            print(f"  profile: {out}")
        delays = sorted(at - t0 for at in got.values())
        errors = Counter(fleet.call_errors)
        errors.subtract(errors0)
        errors = +errors
        load = os.getloadavg()
        if not delays:
            print(f"  round {round_no}: no profile received")
            continue
        p50, p99, last = p50_p99_max(delays)
        n = len(delays)
        print(
            f"  round {round_no}: {n}/{want} profiles: first {delays[0]:.3f} s, p50 {p50:.3f}, "
            f"p99 {p99:.3f}, last {last:.3f}; first->p99 {p99 - delays[0]:.3f} s "
            f"({(p99 - delays[0]) / max(1, 0.98 * n) * 1e6:.0f} us/charger)\n"
            f"    results on the bus {n_results} {statuses}, last at +{last_result - t0:.3f} s; "
            f"gateway CPU {cpu1 - cpu0:.2f} s ({(cpu1 - cpu0) / n * 1e6:.0f} us/command), "
            f"loop thread {thread1 - thread0:.2f} s ({(thread1 - thread0) / n * 1e6:.0f} "
            f"us/command); fleet CPU {load_cpu / load_wall:.0%}; "
            f"CallErrors {dict(errors) or 0}; GC {gc_figures}; "
            f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            flush=True,
        )
        await asyncio.sleep(args.pause)
    if args.census:
        total, frozen, kinds = await ask("census")
        print(f"  GC-tracked objects: {total} (+{frozen} frozen); most: {kinds}")
    await fleet.stop()
    ours.send(("stop",))
    await loop.run_in_executor(None, ours.recv)
    proc.join(30)
    if proc.is_alive():
        proc.terminate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", default="2000,5000", help="fleet sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=3, help="command rounds per size")
    ap.add_argument("--connect-rate", type=float, default=1000.0, help="connections/s")
    ap.add_argument("--settle", type=float, default=3.0, help="s after connect, before round 0")
    ap.add_argument("--pause", type=float, default=2.0, help="s between rounds")
    ap.add_argument("--timeout", type=float, default=30.0, help="s to wait for every profile")
    ap.add_argument("--census", action="store_true", help="print the GC-tracked object types")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", help="py-spy --gil the last round into DIR/delivery-N.txt")
    args = ap.parse_args()
    print(f"dr_delivery: {machine()}")
    for size in (int(s) for s in args.chargers.split(",")):
        asyncio.run(run_size(size, args))


if __name__ == "__main__":
    main()
