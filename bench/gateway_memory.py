"""Where a gateway's memory goes per connected charger: RSS, tracemalloc, objects by type.

    .venv/bin/python bench/gateway_memory.py --steps 1000,10000            # attribution
    .venv/bin/python bench/gateway_memory.py --steps 10000 --no-trace      # RSS only
    .venv/bin/python bench/gateway_memory.py --steps 10000 --no-trace --event   # a DR event
    .venv/bin/python bench/gateway_memory.py --steps 3000 --event --snapshots 0.5,1,2

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

With ``--event``, after the last step the child publishes one ``SetChargingProfileCommand``
per station onto ``ocpp.commands.set_charging_profile`` in one ``publish_many`` (as the
engine's sink does: a new signal, every station sent), the fleet answers and reports its new
draw at once (the burst of readings a real event brings), and the child reports:

- RSS sampled every 20 ms by a thread from the publish until every ``CommandResult`` is on
  the bus (the event's peak), then again ``--after`` s later;
- with tracing, ``tracemalloc`` snapshots ``--snapshots`` s after the publish: traced
  bytes over the pre-event report by owner and by allocation site, objects by type;
- pymalloc's arenas (``sys._debugmallocstats``) before, at the last snapshot and after,
  so RSS that stays after the event can be told from bytes still referenced;
- with ``--trim``, RSS before and after ``malloc_trim(0)`` once the event is over.

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


def _report(trace: bool, gateway: Any, bus: Any, *, collect: bool = True) -> dict[str, Any]:
    import tracemalloc

    if collect:  # not during an event: what the collector would free later is held now
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


class _RssPeak:
    """The highest RSS of this process, sampled by a thread (it runs while the loop is busy)."""

    def __init__(self, every: float = 0.02) -> None:
        import threading

        self.peak = 0.0
        self.at = 0.0
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(self._every):
            rss = rss_mib(pid)
            if rss > self.peak:
                self.peak, self.at = rss, time.monotonic() - self._t0

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak, self.at


def _mallocstats() -> dict[str, int]:
    """pymalloc's arenas and blocks now (parsed from ``sys._debugmallocstats``' stderr)."""
    with tempfile.TemporaryFile("w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    stats: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition("=")
        name = name.strip("# ").strip()
        if sep and name in (
            "arenas allocated current", "arenas highwater mark", "bytes in allocated blocks",
            "bytes in available blocks",
        ):  # fmt: skip
            stats[name] = int(value.strip().replace(",", ""))
    return stats


async def _event(
    trace: bool, gateway: Any, bus: Any, snapshots: list[float], after: float, trim: bool
) -> dict[str, Any]:
    """One DR event: a command per held station, the peak while delivered, then after."""
    from datetime import UTC, datetime, timedelta

    from pipeline import topics
    from pipeline.bus import Message
    from pipeline.contracts import CommandResult, SetChargingProfileCommand, decode, encode

    results = bus.subscribe([topics.COMMAND_RESULTS], group=None)
    while await results.batch(100_000, timeout=0.2):  # the results before the event
        pass
    before = _report(trace, gateway, bus)
    before["malloc"] = _mallocstats()
    now = datetime.now(UTC)
    zones = [gateway.registry.zone(sid) for sid in list(gateway.stations)]
    batch = [
        Message(
            topics.SET_CHARGING_PROFILE,
            z.station_id,
            encode(
                SetChargingProfileCommand(
                    station_id=z.station_id,
                    target_power_kw=round(z.max_station_kw * 0.6, 2),
                    signal_id="bench-memory-event",
                    dr_end_ts=now + timedelta(minutes=10),
                    command_ts=now,
                )
            ),
        )
        for z in zones
        if z is not None
    ]
    want = len(batch)
    del zones
    gc.collect()
    if trace:
        import tracemalloc

        tracemalloc.reset_peak()
    peak = _RssPeak()
    t0 = time.monotonic()
    await bus.publish_many(batch)
    del batch
    out: dict[str, Any] = {"before": before, "commands": want, "snapshots": []}
    got = 0
    statuses: Counter[str] = Counter()
    pending = sorted(snapshots)
    while got < want and time.monotonic() - t0 < 120:
        if pending and time.monotonic() - t0 >= pending[0]:
            at = pending.pop(0)
            snap = _report(trace, gateway, bus, collect=False)
            snap["at"] = at
            snap["results"] = got
            if not pending:
                snap["malloc"] = _mallocstats()
            out["snapshots"].append(snap)
        for r in await results.batch(100_000, timeout=0.05):
            result = decode(CommandResult, r.value, topic=r.topic)  # type: ignore[arg-type]
            if result.action != "Clock":
                got += 1
                statuses[f"{result.action} {result.status}"] += 1
    out["delivered_s"] = time.monotonic() - t0
    out["peak"], out["peak_at"] = peak.stop()
    if trace:
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
    out["results"] = dict(statuses)
    out["rss_delivered"] = rss_mib(os.getpid())
    await asyncio.sleep(after)
    out["after"] = _report(trace, gateway, bus)
    out["after"]["malloc"] = _mallocstats()
    if trim:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        out["trimmed"] = rss_mib(os.getpid())
    await results.close()
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
    from cli import gc_settings

    gc_settings.settle()  # as gridctl run and gridctl gateway do once started
    loop = asyncio.get_running_loop()
    conn.send(gateway.port)
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "stop":
            break
        if isinstance(command, tuple) and command[0] == "event":
            conn.send(await _event(trace, gateway, bus, *command[1:]))
            continue
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
        if args.event:
            got: set[str] = set()
            for fleet in fleets:
                fleet.on_profile = lambda sid, _at: got.add(sid)
            refused0 = sum(f.refused_readings() for f in fleets)
            snapshots = [float(x) for x in args.snapshots.split(",")] if args.snapshots else []
            parent.send(("event", snapshots, args.after, args.trim))
            event = await loop.run_in_executor(None, parent.recv)
            event["profiles"] = len(got)
            event["refused"] = sum(f.refused_readings() for f in fleets) - refused0
            reports.append(event)
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


def show_event(event: dict[str, Any], top: int) -> None:
    before, after = event["before"], event["after"]
    print(f"\n## DR event: {event['commands']} commands, {event['profiles']} profiles received, "
          f"results {event['results']} in {event['delivered_s']:.1f} s, "
          f"{event['refused']} readings refused")  # fmt: skip
    trim = f", after malloc_trim {event['trimmed']:.1f}" if "trimmed" in event else ""
    print(f"RSS MiB: before {before['rss']:.1f}, peak {event['peak']:.1f} (at "
          f"+{event['peak_at']:.1f} s), at the last result {event['rss_delivered']:.1f}, "
          f"after {after['rss']:.1f}{trim}")  # fmt: skip
    if "traced_peak" in event:
        print(
            f"traced MiB: before {mib(before['traced']).strip()}, peak "
            f"{mib(event['traced_peak']).strip()}, after {mib(after['traced']).strip()}"
        )
    for name, r in (("before", before), *((f"+{s['at']:g} s", s) for s in event["snapshots"]
                    if "malloc" in s), ("after", after)):  # fmt: skip
        m = r.get("malloc", {})
        if m:
            print(
                f"pymalloc {name}: arenas of 1 MiB {m.get('arenas allocated current', 0)} "
                f"(highwater {m.get('arenas highwater mark', 0)}), allocated blocks "
                f"{mib(m.get('bytes in allocated blocks', 0)).strip()} MiB, free blocks "
                f"{mib(m.get('bytes in available blocks', 0)).strip()} MiB"
            )
    n = max(1, event["commands"])
    for snap in (*event["snapshots"], after):
        label = f"+{snap['at']:g} s ({snap['results']} results)" if "at" in snap else "after"
        traced = ""
        if "traced" in snap:
            traced = f", traced +{(snap['traced'] - before['traced']) / 2**20:.1f} MiB"
        print(f"\n### {label}: RSS {snap['rss']:.1f} MiB{traced} over before")
        if "owners" in snap:
            owners = Counter(snap["owners"])
            owners.subtract(before["owners"])
            print("by owner, B per command: " + ", ".join(
                f"{k} {v / n:.0f}" for k, v in owners.most_common(12)))  # fmt: skip
            print("top allocation sites, B and blocks per command:")
            print_sites(snap, before, n, top)
        types = Counter(snap["types"])
        types.subtract(before["types"])
        print("objects per command by type: " + ", ".join(
            f"{k} {v / n:.2f}" for k, v in types.most_common(top) if v / n >= 0.2))  # fmt: skip
        records = sum(snap["bus_records"].values()) - sum(before["bus_records"].values())
        print(
            f"bus records added: {records} "
            f"({(snap['bus_bytes'] - before['bus_bytes']) / 2**20:.1f} MiB of values/keys)"
        )


def print_sites(after: dict[str, Any], before: dict[str, Any], n: int, top: int) -> None:
    """The allocation sites that grew most from ``before`` to ``after``, per unit of ``n``."""
    rows = []
    for where, (size, count) in after["tracebacks"].items():
        size0, count0 = before["tracebacks"].get(where, (0, 0))
        rows.append(((size - size0) / n, (count - count0) / n, where))
    for size, count, where in sorted(rows, reverse=True)[:top]:
        print(f"  {size:8.0f} B {count:5.2f}  {where}")


def show(reports: list[dict[str, Any]], top: int) -> None:
    event = reports.pop() if "commands" in reports[-1] else None
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
            print_sites(b, a, n, top)
        types = Counter(b["types"])
        types.subtract(a["types"])
        print("objects per charger by type: " + ", ".join(
            f"{k} {v / n:.2f}" for k, v in types.most_common(top) if v / n >= 0.5))  # fmt: skip
        bus = {t: b["bus_records"].get(t, 0) - a["bus_records"].get(t, 0)
               for t in b["bus_records"]}  # fmt: skip
        print("bus records added: " + ", ".join(f"{t} {v}" for t, v in bus.items() if v))
    if event is not None:
        show_event(event, top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="1000,10000", help="connected chargers at each report")
    ap.add_argument("--no-trace", action="store_true", help="RSS and objects only (fast)")
    ap.add_argument("--meter-interval", type=float, default=10.0)
    ap.add_argument("--connect-rate", type=float, default=500.0, help="chargers/s")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--event", action="store_true", help="then a DR event (see above)")
    ap.add_argument("--snapshots", default="", help="s after the publish: traced snapshots")
    ap.add_argument("--after", type=float, default=10.0, help="s after the last result")
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) after the event")
    args = ap.parse_args()
    print(f"# machine: {machine()}; steps {args.steps}, tracemalloc "
          f"{'off' if args.no_trace else f'on (depth {TRACE_DEPTH})'}", flush=True)  # fmt: skip
    t0 = time.monotonic()
    reports = asyncio.run(run(args))
    show(reports, args.top)
    print(f"\n# {time.monotonic() - t0:.0f} s; load avg at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
