"""Drill: floods of hostile OCPP frames from 10 connections while 100 chargers keep sending.

``gridctl run`` in a child process (LocalBus with its WAL, a real PostgreSQL, unknown
stations allowed). First a quiet run: 100 well-behaved chargers (:mod:`tests.drills.raw`)
send MeterValues every 0.2 s, and their ack latency is recorded. Then the same chargers
keep going while 10 more connections flood, one shape after the other:

- ``fuzz``: up to 100,000 frames drawn from a seeded generator: garbage text, JSON of
  every shape, calls of every 1.6 action with mutated payloads, unsolicited results and
  errors, MeterValues with broken values, oversized and deeply nested frames;
- ``garbage``: text that is not JSON; ``unknown``: calls of actions nobody has;
- ``large``: valid MeterValues of ~60 KB (60 samples of a 3-phase charger), just below
  the 64 KiB frame limit;
- ``paced``: the fuzz mix at 1,000 frames/s in all.

The flooders send as fast as the gateway reads (at most ``WINDOW`` unanswered frames per
connection); the gateway's per-connection budget slows them and closes them (1008) when
they stay over it; a closed flooder reconnects and goes on. Must hold: gridctl is alive
and healthy afterwards, no well-behaved charger lost its connection or got a CallError,
and the budget was what stopped the floods. Printed: each phase's well-behaved ack p99
against the quiet one (the bound is 2x; a miss is an xfail with the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bench._common import GridctlProcess, metric_sum, pct
from bench.gateway_throughput import METER_PAYLOAD
from tests.drills.raw import Ledger, MeterCharger, connect, finish, run_fleet

GOOD = 100
FUZZERS = 10
FRAMES = 100_000
FUZZ_SECONDS = 30.0  # bound of the fuzz phase
SHAPE_SECONDS = 15.0  # bound of each single-shape flood
QUIET_SECONDS = 10.0
PACED_RATE = 1000.0  # fuzzed frames/s in the paced phase
PACED_SECONDS = 15.0
PACED_FRAMES = int(PACED_RATE * PACED_SECONDS)
WINDOW = 32  # unanswered fuzz frames per connection before it waits for answers

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]

ACTIONS_16 = [
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction",
    "StatusNotification", "StopTransaction", "SetChargingProfile", "NoSuchAction", "",
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, -(2**70), 1e308, -0.0, rng.randint(-1000, 1000)])
    if kind == 3:
        return rng.choice(
            ["", "NaN", "Infinity", "1e999", "2026-13-45T99:99:99Z", "\u0000", "é" * 50]
        )
    if kind == 4:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if kind == 5:
        return rng.uniform(-1e6, 1e6)
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    keys = ["connectorId", "meterValue", "sampledValue", "value", "timestamp", "idTag", "x"]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def _meter(rng: random.Random) -> dict[str, object]:
    sampled = {
        "value": rng.choice(["abc", "-5", "1e400", "", "12.5", "NaN"]),
        "measurand": rng.choice(["Power.Active.Import", "Energy.Active.Import.Register", "X"]),
        "unit": rng.choice(["W", "kW", "Wh", "V", "bogus"]),
    }
    return {
        "connectorId": rng.choice([1, 0, -1, "1", None, 10**12]),
        "meterValue": [
            {
                "timestamp": rng.choice(["2026-11-24T10:00:00Z", "yesterday", 0]),
                "sampledValue": [sampled],
            }
        ],
    }


def garbage_frame(rng: random.Random) -> str:
    return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 200)))


def unknown_frame(rng: random.Random) -> str:
    return json.dumps([2, f"u{rng.randrange(10**9)}", f"NoSuchAction{rng.randrange(100)}", {}])


def large_frame(rng: random.Random) -> str:
    """A valid 1.6 MeterValues of ~60 KB: 60 samples of 9 values, one second apart."""
    t0 = datetime.now(UTC)
    sample = METER_PAYLOAD["meterValue"][0]["sampledValue"]  # type: ignore[index]
    values = [
        {"timestamp": (t0 - timedelta(seconds=60 - i)).isoformat(), "sampledValue": sample}
        for i in range(60)
    ]
    payload = {"connectorId": 1, "meterValue": values}
    return json.dumps([2, f"l{rng.randrange(10**9)}", "MeterValues", payload])


def fuzz_frame(rng: random.Random) -> str:
    """One frame; every branch is something a broken or hostile charger could send."""
    kind = rng.randrange(12)
    uid = rng.choice([f"f{rng.randrange(10**9)}", "", "x" * 40, 7, None])
    if kind == 0:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return json.dumps(_value(rng))
    if kind in (2, 3, 4):
        return json.dumps([2, uid, rng.choice(ACTIONS_16), _value(rng)])
    if kind == 5:
        return json.dumps([2, uid, "MeterValues", _meter(rng)])
    if kind == 6:
        return json.dumps([3, uid, _value(rng)])
    if kind == 7:
        return json.dumps([4, uid, "InternalError", "fuzz", _value(rng)])
    if kind == 8:
        return json.dumps([rng.choice([0, 1, 5, 99, -2, "2"]), uid, "Heartbeat", {}])
    if kind == 9:
        depth = rng.choice([100, 5_000, 50_000])
        return "[2," + "[" * depth + "]" * depth + "]"
    if kind == 10 and rng.random() < 0.02:
        return json.dumps([2, "big", "DataTransfer", {"vendorId": "x" * 70_000}])  # > max_size
    return json.dumps([2, uid, "Heartbeat", {"extra": _value(rng)}])[: rng.randrange(1, 60)]


SHAPES: dict[str, Callable[[random.Random], str]] = {
    "fuzz": fuzz_frame, "garbage": garbage_frame, "unknown": unknown_frame, "large": large_frame,
}  # fmt: skip


async def fuzzer(
    port: int,
    index: int,
    frames: int,
    deadline: float,
    rate: float | None,
    stats: Counter[str],
    shape: str = "fuzz",
) -> None:
    """Send ``frames`` frames of ``shape`` (``rate`` per second, or as fast as answered)."""
    rng = random.Random(1000 + index)
    make = SHAPES[shape]
    sent = 0
    gap = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    while sent < frames and time.monotonic() < deadline:
        try:
            ws = await asyncio.wait_for(connect(port, f"fuzz-{index:02d}", None), 10.0)
        except Exception:
            stats["connect_failures"] += 1
            await asyncio.sleep(0.2)
            continue
        stats["connections"] += 1
        window = asyncio.Semaphore(WINDOW)

        async def drain(ws=ws, window=window) -> None:  # type: ignore[no-untyped-def]
            with contextlib.suppress(Exception):
                while True:
                    await ws.recv()
                    stats["answers"] += 1
                    window.release()

        reader = asyncio.create_task(drain())
        try:
            while sent < frames and time.monotonic() < deadline and not reader.done():
                if gap:
                    next_at += gap
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    # Frames that get no answer (unsolicited results) would hold the window
                    # forever: wait a little, then send anyway.
                    await asyncio.wait_for(window.acquire(), 0.05)
                await ws.send(make(rng))
                await ws.writer.drain()
                sent += 1
                stats["sent"] += 1
        except Exception:
            pass
        finally:
            if reader.done():
                stats["closed_by_gateway"] += 1
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            with contextlib.suppress(Exception):
                ws.writer.transport.abort()


async def fuzz_all(
    port: int, frames: int, seconds: float, rate: float | None, shape: str
) -> dict[str, int]:
    stats: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    per = rate / FUZZERS if rate else None
    await asyncio.gather(
        *(fuzzer(port, i, frames // FUZZERS, deadline, per, stats, shape) for i in range(FUZZERS))
    )
    return dict(stats)


def _fuzz_process(
    port: int, frames: int, seconds: float, rate: float | None, shape: str, out: Any
) -> None:
    """The fuzzers in a process of their own, so generating frames does not slow down
    the event loop that times the well-behaved chargers' acks."""
    out.put(asyncio.run(fuzz_all(port, frames, seconds, rate, shape)))


async def fuzz_phase(
    gw: GridctlProcess, frames: int, seconds: float, rate: float | None, shape: str = "fuzz"
) -> tuple[dict[str, int], float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    args = (gw.ocpp_port, frames, seconds, rate, shape, out)
    proc = ctx.Process(target=_fuzz_process, args=args)
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    proc.start()
    try:
        stats = await loop.run_in_executor(None, out.get, True, seconds + 60)
    finally:
        await loop.run_in_executor(None, proc.join, 10)
        if proc.is_alive():
            proc.kill()
    return stats, time.monotonic() - t0


def describe(name: str, stats: dict[str, int], seconds: float) -> str:
    sent = stats.get("sent", 0)
    return (
        f"{name}: {sent} fuzzed frames from {FUZZERS} connections in {seconds:.1f} s "
        f"({sent / seconds:.0f}/s), answers {stats.get('answers', 0)}, fuzz connections "
        f"{stats.get('connections', 0)} (closed by the gateway "
        f"{stats.get('closed_by_gateway', 0)}, connect failures "
        f"{stats.get('connect_failures', 0)})"
    )


async def test_fuzzed_frames_do_not_crash_or_starve_good_chargers(
    gridctl: Callable[..., GridctlProcess], postgres: str
) -> None:
    gw = gridctl(database_url=postgres, allow_unknown_stations=True, tick=1.0)
    await gw.start()
    quiet = Ledger()
    phases: list[tuple[str, int, float, float | None, str]] = [
        ("flood (fuzz, unpaced)", FRAMES, FUZZ_SECONDS, None, "fuzz"),
        ("flood (garbage)", FRAMES, SHAPE_SECONDS, None, "garbage"),
        ("flood (unknown actions)", FRAMES, SHAPE_SECONDS, None, "unknown"),
        ("flood (valid ~60 KB MeterValues)", FRAMES, SHAPE_SECONDS, None, "large"),
        (f"paced fuzz at {PACED_RATE:.0f}/s", PACED_FRAMES, PACED_SECONDS, PACED_RATE, "fuzz"),
    ]
    ledgers = {name: Ledger() for name, *_ in phases}
    stop = asyncio.Event()
    good = [
        MeterCharger(gw.ocpp_port, f"good-{i:03d}", quiet, stop, interval=0.2) for i in range(GOOD)
    ]
    tasks = await run_fleet(good)

    def switch(ledger: Ledger) -> None:
        for c in good:
            c.ledger = ledger

    results: dict[str, tuple[dict[str, int], float]] = {}
    try:
        await asyncio.sleep(2.0)  # connected and warm
        quiet.ack_ms.clear()
        await asyncio.sleep(QUIET_SECONDS)
        for name, frames, seconds, rate, shape in phases:
            switch(ledgers[name])
            results[name] = await fuzz_phase(gw, frames, seconds, rate, shape)
        switch(quiet)
    finally:
        stop.set()
        await finish(tasks)
    alive = gw.proc is not None and gw.proc.poll() is None
    async with httpx.AsyncClient() as client:
        healthy = (await client.get(f"http://127.0.0.1:{gw.ocpp_port}/healthz")).status_code == 200
    metrics = await gw.gateway_metrics()
    frame_errors = metric_sum(metrics, "gridctl_ocpp_frame_errors_total")
    budget = metric_sum(metrics, "gridctl_ocpp_budget_exceeded_total")
    q99 = pct(quiet.ack_ms, 99)
    ratios = {name: pct(ledger.ack_ms, 99) / q99 for name, ledger in ledgers.items()}
    lines = [f"\n[fuzz] CallErrors counted by the gateway: {frame_errors:.0f}, frames over "
             f"budget (slowed or closed): {budget:.0f}; gridctl alive: {alive}, healthy: {healthy}",
             f"  well-behaved, quiet ({QUIET_SECONDS:.0f} s): {quiet.summary()}"]  # fmt: skip
    for name, (stats, seconds) in results.items():
        lines.append(f"  {describe(name, stats, seconds)}")
        lines.append(f"    well-behaved during it: {ledgers[name].summary()}")
    lines.append(
        f"  well-behaved ack p99: quiet {q99:.1f} ms; "
        + "; ".join(f"{name} {pct(ledgers[name].ack_ms, 99):.1f} ms ({r:.2f}x)"
                    for name, r in ratios.items())
        + " (bound 2x)"
    )  # fmt: skip
    print("\n".join(lines))
    assert alive and healthy, "gridctl must survive every frame"
    for ledger in (quiet, *ledgers.values()):
        assert not ledger.call_errors and not ledger.disconnects and not ledger.timeouts
        assert ledger.ack_ms, "every phase must have timed some well-behaved acks"
    assert budget > 0, "the floods must have met the per-connection budget"
    missed = {name: r for name, r in ratios.items() if r > 2.0}
    if missed:
        pytest.xfail(
            f"known miss: well-behaved ack p99 above 2x quiet ({q99:.1f} ms) in "
            + ", ".join(f"{n} ({r:.2f}x)" for n, r in missed.items())
            + "; see docs/performance.md"
        )
