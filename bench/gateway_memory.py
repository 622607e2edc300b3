"""Where a gateway's memory goes per connected charger: RSS, tracemalloc, objects by type.

    .venv/bin/python bench/gateway_memory.py --steps 1000,10000            # attribution
    .venv/bin/python bench/gateway_memory.py --steps 10000 --no-trace      # RSS only

The gateway runs in a child process as ``gridctl gateway`` builds it (``Gateway`` on a
bus, the default ``GatewayConfig``; stations imported onto the bus as ``POST
/v1/stations`` does, zones and credentials, and the store of verified passwords written
as after a restart). The bus is a ``LocalBus`` with its write-ahead log (what ``gridctl
run`` uses), so what it keeps of every reading in memory shows too. The chargers are
:mod:`bench.lean_fleet` in this process (half 1.6, half 2.0.1, MeterValues /
TransactionEvent every ``--meter-interval`` s); they connect in steps, and after each step
has sent two rounds of readings the child reports:

- RSS, and with tracing (``tracemalloc`` started before the gateway is imported, so every
  allocation of ours and of the libraries is traced) the traced bytes;
- between two steps: bytes per added connection by *owner* (the innermost frame of the
  allocating traceback, named by its package; a stdlib frame such as asyncio's is named
  with the first non-stdlib caller, ``asyncio<-websockets``), the top tracebacks, and
  objects per connection by type (``gc.get_objects``);
- the non-per-connection baseline: traced bytes and RSS before any charger (imports,
  compiled schemas and validators, the gateway's state).

tracemalloc costs CPU (~2x) and its own memory (not in the traced bytes, but in RSS): take
RSS figures from a ``--no-trace`` run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import itertools
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import machine, rss_mib  # noqa: E402

PASSWORD = "bench-password"
STDLIB = Path(os.__file__).parent
TRACE_DEPTH = 8


# -- the gateway (child process) ------------------------------------------------------
def _owner(frames: Any) -> str:
    """The package that allocated: innermost frame first, stdlib named with its caller."""
    names = [_package(f.filename) for f in reversed(frames)]  # stored oldest first
    first = names[0]
    if first.startswith("stdlib:"):
        for name in names[1:]:
            if not name.startswith("stdlib:"):
                return f"{first[7:]}<-{name}"
        return first[7:]
    return first


@functools.cache
def _package(filename: str) -> str:
    path = Path(filename)
    if "site-packages" in path.parts:
        i = path.parts.index("site-packages")
        return path.parts[i + 1].removesuffix(".py")
    with contextlib.suppress(ValueError):
        rel = path.relative_to(ROOT)
        parts = rel.with_suffix("").parts
        return ".".join(parts[:2])  # ocpp_gateway.station, pipeline.bus ...
    with contextlib.suppress(ValueError):
        rel = path.relative_to(STDLIB)
        return "stdlib:" + rel.parts[0].removesuffix(".py")
    return path.name


def _where(frames: tuple[tuple[str, int], ...]) -> str:
    return " < ".join(f"{_package(f)}:{Path(f).name}:{n}" for f, n in frames)


def _report(trace: bool, gateway: Any, bus: Any) -> dict[str, Any]:
    import tracemalloc

    gc.collect()
    out: dict[str, Any] = {"rss": rss_mib(os.getpid()), "connected": len(gateway.stations)}
    out["types"] = Counter(type(o).__qualname__ for o in gc.get_objects())
    out["bus_records"] = {t: len(log_.tail) for t, log_ in bus._logs.items()}
    #: bytes of the values and keys the bus keeps in memory (the records' own objects aside)
    out["bus_bytes"] = sum(
        len(r.value or b"") + len(r.key or "") for log_ in bus._logs.values() for r in log_.tail
    )
    if trace:
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
        )
        owners: Counter[str] = Counter()
        tracebacks: dict[str, tuple[int, int]] = {}
        sites: dict[tuple[tuple[str, int], ...], list[int]] = {}
        for stat in snap.statistics("traceback"):
            owners[_owner(stat.traceback)] += stat.size
            key = tuple((f.filename, f.lineno) for f in reversed(stat.traceback[-4:]))
            site = sites.setdefault(key, [0, 0])
            site[0] += stat.size
            site[1] += stat.count
        for key, (size, count) in sites.items():
            tracebacks[_where(key)] = (size, count)
        out["traced"] = sum(owners.values())
        out["owners"] = owners
        out["tracebacks"] = tracebacks
    return out


def _serve(conn: Any, data_dir: str, trace: bool, stations: list[dict[str, Any]]) -> None:
    if trace:
        import tracemalloc

        tracemalloc.start(TRACE_DEPTH)
    asyncio.run(_serve_async(conn, Path(data_dir), trace, stations))


async def _serve_async(
    conn: Any, data_dir: Path, trace: bool, stations: list[dict[str, Any]]
) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    from ocpp_gateway import Gateway, GatewayConfig
    from pipeline import topics
    from pipeline.bus import LocalBus, Message
    from pipeline.contracts import StationCredential, StationZone, encode

    bus = LocalBus(data_dir / "bus")
    await bus.start()
    zones = [StationZone(**{k: v for k, v in s.items() if k != "password_hash"}) for s in stations]
    creds = [StationCredential(station_id=s["station_id"], password_hash=s["password_hash"])
             for s in stations]  # fmt: skip
    messages = [Message(topics.STATION_ZONES, z.station_id, encode(z)) for z in zones]
    messages += [Message(topics.STATION_CREDENTIALS, c.station_id, encode(c)) for c in creds]
    for i in range(0, len(messages), 5000):
        await bus.publish_many(messages[i : i + 5000])
    del zones, creds, messages, stations
    gateway = Gateway(bus, GatewayConfig(port=0, state_dir=str(data_dir / "gateway")))
    await gateway.start()
    gc.freeze()  # as gridctl run and gridctl gateway's runtime do once started
    loop = asyncio.get_running_loop()
    conn.send(gateway.port)
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "stop":
            break
        conn.send(_report(trace, gateway, bus))
    await gateway.stop()
    await bus.stop()


# -- the fleet (this process) ----------------------------------------------------------
async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench.lean_fleet import LeanFleet
    from ocpp_gateway.verified import VerifiedStore
    from pipeline.secrets import hash_password
    from simulator.stations import api_rows, generate

    steps = [int(s) for s in args.steps.split(",")]
    specs = generate(steps[-1], zones=10, seed=7, password=PASSWORD)
    password_hash = hash_password(PASSWORD)
    tmp = Path(tempfile.mkdtemp(prefix="gw-memory-"))
    store = VerifiedStore(tmp / "gateway")
    for spec in specs:
        store.remember(spec.station_id, PASSWORD, password_hash)
    store.save()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_serve, args=(child, str(tmp), not args.no_trace, api_rows(specs, password_hash))
    )
    proc.start()
    loop = asyncio.get_running_loop()
    port = await loop.run_in_executor(None, parent.recv)

    async def report() -> dict[str, Any]:
        parent.send("report")
        return await loop.run_in_executor(None, parent.recv)  # type: ignore[no-any-return]

    reports = [await report()]
    fleets: list[LeanFleet] = []
    try:
        done = 0
        for step in steps:
            fleet = LeanFleet(
                specs[done:step], f"ws://127.0.0.1:{port}/ocpp", PASSWORD,
                meter_interval=args.meter_interval, connect_rate=args.connect_rate,
            )  # fmt: skip
            fleets.append(fleet)
            await fleet.start()
            await fleet.wait_connected(timeout=60 + step / 50)
            done = step
            # two rounds of readings from every charger of the step (steady state)
            await asyncio.sleep(2 * args.meter_interval + 1)
            reports.append(await report())
            print(f"  {step} chargers: {reports[-1]['connected']} connected, RSS "
                  f"{reports[-1]['rss']:.1f} MiB, load avg {os.getloadavg()[0]:.2f}",
                  flush=True)  # fmt: skip
    finally:
        for fleet in fleets:
            await fleet.stop()
        parent.send("stop")
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return reports


def mib(n: float) -> str:
    return f"{n / 2**20:8.1f}"


def show(reports: list[dict[str, Any]], top: int) -> None:
    base = reports[0]
    traced = f", traced {mib(base['traced']).strip()} MiB" if "traced" in base else ""
    print(f"\nbaseline (no charger): RSS {base['rss']:.1f} MiB{traced}")
    if "owners" in base:
        print("  by owner, MiB: " + ", ".join(
            f"{k} {v / 2**20:.1f}" for k, v in base["owners"].most_common(12)))  # fmt: skip
    print("\nconnected   RSS MiB  RSS per charger   traced MiB   bus records in memory (MiB)")
    for r in reports:
        per = (r["rss"] - base["rss"]) * 2**20 / r["connected"] if r["connected"] else 0
        traced = mib(r["traced"]) if "traced" in r else "       -"
        records = sum(r["bus_records"].values())
        print(f"{r['connected']:>9} {r['rss']:9.1f} {per:12.0f} B  {traced}     {records:>9} "
              f"({r['bus_bytes'] / 2**20:.1f})")  # fmt: skip
    for a, b in itertools.pairwise(reports):
        n = b["connected"] - a["connected"]
        if n <= 0:
            continue
        print(f"\n## {a['connected']} -> {b['connected']} chargers: per added charger")
        rss = (b["rss"] - a["rss"]) * 2**20 / n
        print(f"RSS {rss:.0f} B per charger")
        if "owners" in b:
            total = (b["traced"] - a["traced"]) / n
            print(f"traced {total:.0f} B per charger, by owner:")
            owners = Counter(b["owners"])
            owners.subtract(a["owners"])
            for name, size in owners.most_common(top):
                print(f"  {size / n:8.0f} B  {name}")
            print("top allocation sites (4 frames, the allocating one first), B per charger "
              "and blocks:")  # fmt: skip
            rows = []
            for where, (size, count) in b["tracebacks"].items():
                size0, count0 = a["tracebacks"].get(where, (0, 0))
                rows.append(((size - size0) / n, (count - count0) / n, where))
            for size, count, where in sorted(rows, reverse=True)[:top]:
                print(f"  {size:8.0f} B {count:5.2f}  {where}")
        types = Counter(b["types"])
        types.subtract(a["types"])
        print("objects per charger by type: " + ", ".join(
            f"{k} {v / n:.2f}" for k, v in types.most_common(top) if v / n >= 0.5))  # fmt: skip
        bus = {t: b["bus_records"].get(t, 0) - a["bus_records"].get(t, 0)
               for t in b["bus_records"]}  # fmt: skip
        print("bus records added: " + ", ".join(f"{t} {v}" for t, v in bus.items() if v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="1000,10000", help="connected chargers at each report")
    ap.add_argument("--no-trace", action="store_true", help="RSS and objects only (fast)")
    ap.add_argument("--meter-interval", type=float, default=10.0)
    ap.add_argument("--connect-rate", type=float, default=500.0, help="chargers/s")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    print(f"# machine: {machine()}; steps {args.steps}, tracemalloc "
          f"{'off' if args.no_trace else f'on (depth {TRACE_DEPTH})'}", flush=True)  # fmt: skip
    t0 = time.monotonic()
    reports = asyncio.run(run(args))
    show(reports, args.top)
    print(f"\n# {time.monotonic() - t0:.0f} s; load avg at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
