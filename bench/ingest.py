"""Sustained MeterValues/s into the engine: ack latency at the charger and the engine's lag.

    .venv/bin/python bench/ingest.py --bus local,kafka --rates 1000,2000,4000 --seconds 20

``gridctl run`` in a child process (embedded PostgreSQL, engine, gateway with schema
validation on, LocalBus with its fsynced WAL or KafkaBus on a Tansu broker); the load is
``bench/gateway_throughput.py``'s raw-websocket client in two processes: ``--chargers``
connections, each sending OCPP 1.6 MeterValues (9 sampled values, one connector: one
``ocpp.meter_values`` record each) at a fixed total rate, timing each CallResult.

Every 0.5 s the bench reads the gateway's ``gridctl_readings_ingested_total`` (records
published, from the OCPP port's ``/metrics``) and the engine's
``gridctl_engine_records_ingested_total{topic="ocpp.meter_values"}`` (from the API's
``/metrics``): their difference is the engine's lag, records on the bus not yet in
PostgreSQL. A rate is sustained when the lag stays bounded and drains once the load stops.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    TANSU_CLIENT_CONFIG,
    GridctlProcess,
    cpu_s,
    machine,
    metric_sum,
    rss_mib,
    start_tansu,
)

ENGINE_METER = 'gridctl_engine_records_ingested_total{topic="ocpp.meter_values"}'
GATEWAY_PUBLISHED = "gridctl_readings_ingested_total"
ENGINE_LAG = "gridctl_engine_lag_records"  # the engine's own gauge, set after each ingest


@dataclass
class Row:
    bus: str
    rate: float
    achieved: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    lag_max: float = 0.0
    gauge_max: float = 0.0  # max of gridctl_engine_lag_records seen
    lag_end: float = 0.0
    drain_s: float = float("nan")
    cpu_pct: float = 0.0
    rss_mib: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)


class _Proc:
    """What ``gateway_throughput.load`` reads from a server: its CPU seconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_s(self) -> float:
        return cpu_s(self.pid)


async def counts(gw: GridctlProcess) -> tuple[float, float, float]:
    """(records the gateway published, records the engine ingested, engine lag gauge)."""
    published = metric_sum(await gw.gateway_metrics(), GATEWAY_PUBLISHED)
    metrics = await gw.metrics()
    return published, metrics.get(ENGINE_METER, 0.0), metrics.get(ENGINE_LAG, float("nan"))


async def run_rate(gw: GridctlProcess, bus: str, rate: float, args: argparse.Namespace) -> Row:
    from bench.gateway_throughput import load

    row = Row(bus, rate)
    done = asyncio.Event()

    async def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            with contextlib.suppress(Exception):
                published, engine, gauge = await counts(gw)
                row.samples.append((time.monotonic() - t0, published - engine))
                row.gauge_max = max(row.gauge_max, gauge)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.5)

    sampler = asyncio.create_task(sample())
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        None,
        lambda: load(gw.ocpp_port, args.chargers, args.seconds, rate, _Proc(gw.pid), args.clients),  # type: ignore[arg-type]
    )
    done.set()
    await sampler
    row.achieved = result["rate"]
    row.p50_ms, row.p99_ms = result["p50_ms"], result["p99_ms"]
    row.errors = result["errors"]
    row.cpu_pct = result["cpu_pct"]
    row.rss_mib = rss_mib(gw.pid)
    row.lag_max = max((lag for _, lag in row.samples), default=0.0)
    stopped = time.monotonic()
    published, engine, _ = await counts(gw)
    row.lag_end = published - engine
    while published - engine > 0 and time.monotonic() - stopped < 60:
        await asyncio.sleep(0.2)
        published, engine, _ = await counts(gw)
    if published - engine <= 0:
        row.drain_s = time.monotonic() - stopped
    return row


async def run_bus(bus: str, args: argparse.Namespace) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix=f"gridctl-ingest-{bus}-"))
    broker = start_tansu(tmp) if bus == "kafka" else None
    gw = GridctlProcess(
        tmp / "data",
        bus=bus,
        kafka_bootstrap=broker.bootstrap if broker else None,
        kafka_config=dict(TANSU_CLIENT_CONFIG) if broker else {},
        tick=args.tick,
        allow_unknown_stations=True,
    )
    rows = []
    try:
        await gw.start()
        for rate in args.rates:
            row = await run_rate(gw, bus, rate, args)
            rows.append(row)
            print(f"  {bus} {rate:.0f}/s: achieved {row.achieved:.0f}/s, ack p99 "
                  f"{row.p99_ms:.1f} ms, lag max {row.lag_max:.0f}, drained in "
                  f"{row.drain_s:.1f} s", flush=True)  # fmt: skip
    finally:
        await gw.stop()
        if broker is not None:
            broker.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bus", default="local,kafka")
    parser.add_argument("--rates", default="1000,2000,4000")
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2, help="load client processes")
    parser.add_argument("--tick", type=float, default=1.0)
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    print(f"# machine: {machine()}")
    print(f"# gridctl run (child process, engine tick {args.tick} s); {args.chargers} raw "
          f"websocket chargers in {args.clients} processes, 1.6 MeterValues (9 sampled "
          f"values), {args.seconds:.0f} s per rate", flush=True)  # fmt: skip
    rows: list[Row] = []
    for bus in args.bus.split(","):
        try:
            rows += await run_bus(bus, args)
        except Exception as exc:
            print(f"  {bus}: failed: {exc!r}", flush=True)
    print()
    print(f"{'bus':6} {'offered/s':>9} {'acked/s':>8} {'ack p50 ms':>10} {'ack p99 ms':>10} "
          f"{'errors':>6} {'lag max':>8} {'lag s':>6} {'gauge':>6} {'lag end':>8} "
          f"{'drain s':>7} {'CPU %':>6} {'RSS MiB':>7}")  # fmt: skip
    for r in rows:
        print(f"{r.bus:6} {r.rate:>9.0f} {r.achieved:>8.0f} {r.p50_ms:>10.2f} {r.p99_ms:>10.2f} "
              f"{r.errors:>6} {r.lag_max:>8.0f} {r.lag_max / max(r.achieved, 1):>6.2f} "
              f"{r.gauge_max:>6.0f} "
              f"{r.lag_end:>8.0f} {r.drain_s:>7.1f} "
              f"{r.cpu_pct:>6.0f} {r.rss_mib:>7.0f}")  # fmt: skip
    print(
        "lag = records the gateway published - records the engine ingested (sampled 2/s; "
        "lag s = lag max / acked rate); the engine ingests once per tick, so a lag of about "
        "rate x tick is its steady state; gauge = max of the engine's own "
        "gridctl_engine_lag_records (set right after each ingest). CPU % of the gridctl "
        "process (gateway + engine + API; PostgreSQL not included)"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
