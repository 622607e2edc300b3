"""How big a simulated fleet one process holds, and what load it puts on the gateway.

Runs the real gateway (LocalBus, memory-only, unknown stations allowed) in this process
and ``gridctl simulate`` as a separate process, so each side's memory is its own. Prints
the simulator's peak RSS and RSS per charger, how long the fleet took to connect, the
MeterValues rate it sustained and the gateway's ack latency as the chargers saw it.

    .venv/bin/python bench/simulator_fleet.py --chargers 2000 --interval 10 --duration 60

Figures, not assertions: the machine is shared, so read them with its load in mind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocpp_gateway import Gateway, GatewayConfig  # noqa: E402
from pipeline.bus import LocalBus  # noqa: E402


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


async def main(args: argparse.Namespace) -> None:
    bus = LocalBus()
    await bus.start()
    gateway = Gateway(
        bus,
        GatewayConfig(
            port=0, allow_unknown_stations=True, heartbeat_interval=args.heartbeat, validate=True
        ),
    )
    await gateway.start()
    url = f"ws://127.0.0.1:{gateway.port}/ocpp"
    cmd = [
        sys.executable, "-m", "cli.main", "simulate",
        "--url", url,
        "--chargers", str(args.chargers),
        "--interval", f"{args.interval}s",
        "--duration", f"{args.duration}s",
        "--ratio-201", str(args.ratio_201),
        "--ramp-up", f"{args.ramp_up}s",
        "--summary-every", "5s",
        "--occupancy", "1",
        "--json",
    ]  # fmt: skip
    if not args.validate:
        cmd.append("--no-validate")
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    peak_sim = peak_gw = sim_cpu = 0.0
    gw_cpu0 = cpu_s(os.getpid())
    connected_at: float | None = None
    lines: list[str] = []
    # (calls, simulator CPU s, gateway CPU s) at each summary line once all are connected,
    # so steady-state CPU per call excludes imports, handshakes and boots
    steady: list[tuple[int, float, float]] = []

    async def read() -> None:
        nonlocal connected_at
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode().rstrip()
            lines.append(line)
            print("  sim:", line, flush=True)
            if f"connected={args.chargers}/" in line:
                if connected_at is None:
                    connected_at = time.monotonic() - t0
                calls = int(line.split("calls=")[1].split()[0])
                with contextlib.suppress(OSError):
                    steady.append((calls, cpu_s(proc.pid), cpu_s(os.getpid())))

    reader = asyncio.create_task(read())
    while proc.returncode is None:
        with contextlib.suppress(OSError):
            peak_sim = max(peak_sim, rss_mib(proc.pid))
            sim_cpu = cpu_s(proc.pid)
        peak_gw = max(peak_gw, rss_mib(os.getpid()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 1.0)
    await reader
    gw_cpu = cpu_s(os.getpid()) - gw_cpu0
    stderr = await proc.stderr.read() if proc.stderr else b""
    await gateway.stop()
    await bus.stop()
    if proc.returncode != 0:
        print(stderr.decode()[-2000:])
        raise SystemExit(proc.returncode)
    summary = json.loads(lines[-1])
    elapsed = summary["elapsed_s"]
    print()
    print(f"machine: {os.cpu_count()} cores (shared); python {sys.version.split()[0]}")
    print(f"chargers: {args.chargers} (2.0.1 share {args.ratio_201}), interval {args.interval}s,")
    print(f"  ramp-up {args.ramp_up}s, run {args.duration}s, validation {args.validate}")
    all_in = "n/a" if connected_at is None else f"{connected_at:.1f} s"
    print(f"all connected after (5 s summary resolution): {all_in}")
    per = peak_sim * 1024 / args.chargers
    print(f"simulator peak RSS: {peak_sim:.0f} MiB = {per:.1f} KiB/charger (incl. interpreter)")
    print(f"gateway process peak RSS: {peak_gw:.0f} MiB")
    mv = summary["meter_values"]
    print(f"meter values acked: {mv} in {elapsed:.0f} s = {mv / elapsed:.0f}/s")
    calls = summary["calls"]
    print(f"CPU: simulator {sim_cpu:.1f} s ({sim_cpu / calls * 1000:.2f} ms per call), "
          f"gateway {gw_cpu:.1f} s ({gw_cpu / calls * 1000:.2f} ms per call)")  # fmt: skip
    if len(steady) >= 2:
        (c0, s0, g0), (c1, s1, g1) = steady[0], steady[-1]
        n = max(1, c1 - c0)
        print(f"steady state: {n} calls, simulator {(s1 - s0) / n * 1000:.3f} ms CPU per call, "
              f"gateway {(g1 - g0) / n * 1000:.3f} ms CPU per call")  # fmt: skip
    print(f"ack latency seen by chargers: p50 {summary['ack_p50_ms']} ms, "
          f"p99 {summary['ack_p99_ms']} ms")  # fmt: skip
    print(f"call errors: {summary['call_errors']}; timeouts: {summary['timeouts']}; "
          f"connect failures: {summary['connect_failures']}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--ramp-up", type=float, default=10.0)
    parser.add_argument("--ratio-201", type=float, default=0.5)
    parser.add_argument("--heartbeat", type=float, default=300.0)
    parser.add_argument("--validate", action=argparse.BooleanOptionalAction, default=False)
    asyncio.run(main(parser.parse_args()))
