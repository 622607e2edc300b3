"""Bus latency: publish acknowledgement and produce -> consume, p50/p99, per transport.

    .venv/bin/python bench/bus.py [--n 2000] [--batch 10000] [--only local,wal,kafka]

Transports: ``LocalBus`` in memory, ``LocalBus`` with its fsynced write-ahead log (in a
temporary directory), and ``KafkaBus`` on a Tansu broker this script starts the same way
the test fixture does (:class:`pipeline.bus.tansu.TansuBroker`), or on ``KAFKA_BOOTSTRAP``.

Method: one publisher awaits each ``publish`` in turn (the acknowledgement latency), while
one subscriber (no group, started before the clock runs) stamps each record on arrival;
the value carries the send time, so produce -> consume is measured in one process on one
clock. A new consumer group then times subscribe -> first record (the group join), and
``publish_many`` of ``--batch`` records gives a throughput figure.
Figures depend on the machine's load; print them, never assert them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import topics
from pipeline.bus import Bus, LocalBus, Message

TOPIC = topics.METER_VALUES


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(bus: Bus, n: int, batch: int, pace: float) -> dict[str, float]:
    key = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    sub = bus.subscribe([TOPIC], from_beginning=False)
    await sub.batch(timeout=0.5)  # place the consumer before the clock runs
    arrivals: list[float] = []
    done = asyncio.Event()

    async def consume() -> None:
        while len(arrivals) < n:
            for r in await sub.batch(timeout=0.2):
                if r.key == key and r.value is not None:
                    (sent,) = struct.unpack("!d", r.value[:8])
                    arrivals.append(time.perf_counter() - sent)
        done.set()

    reader = asyncio.create_task(consume())
    for _ in range(20):  # warm-up
        await bus.publish(TOPIC, "warm", b"x" * 200)
    acks: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await bus.publish(TOPIC, key, struct.pack("!d", t0) + b"x" * 192)
        acks.append(time.perf_counter() - t0)
        # Let the reader run, as any real publisher does between records.
        await asyncio.sleep(pace)
    try:
        await asyncio.wait_for(done.wait(), 30)
    except TimeoutError:
        print(f"  (only {len(arrivals)}/{n} records consumed within 30 s)")
    reader.cancel()
    await sub.close()

    # A new group: subscribe -> first record (the group join on Kafka).
    await bus.publish(TOPIC, key, b"join")
    t0 = time.perf_counter()
    async with bus.subscribe([TOPIC], group=f"{key}-group") as grouped:
        while not any(r.key == key for r in await grouped.batch(timeout=0.2)):
            if time.perf_counter() - t0 > 60:
                break
        join = time.perf_counter() - t0

    messages = [Message(TOPIC, f"{key}-{i % 100}", b"y" * 200) for i in range(batch)]
    t0 = time.perf_counter()
    await bus.publish_many(messages)
    elapsed = time.perf_counter() - t0
    return {
        "ack_p50": pct(acks, 0.50) * 1e3,
        "ack_p99": pct(acks, 0.99) * 1e3,
        "e2e_p50": pct(arrivals, 0.50) * 1e3 if arrivals else float("nan"),
        "e2e_p99": pct(arrivals, 0.99) * 1e3 if arrivals else float("nan"),
        "mean_ack": statistics.fmean(acks) * 1e3,
        "many_rps": batch / elapsed,
        "join_s": join,
    }


@asynccontextmanager
async def local_memory() -> AsyncIterator[Bus]:
    async with LocalBus() as bus:
        yield bus


@asynccontextmanager
async def local_wal() -> AsyncIterator[Bus]:
    with tempfile.TemporaryDirectory(prefix="gridctl-bench-") as tmp:
        async with LocalBus(tmp, publish_timeout=30) as bus:
            yield bus


@asynccontextmanager
async def kafka(fetch_wait_ms: int = 20) -> AsyncIterator[Bus]:
    from pipeline.bus import KafkaBus
    from pipeline.bus.tansu import TansuBroker

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if bootstrap:
        async with KafkaBus(bootstrap, fetch_wait_max_ms=fetch_wait_ms) as bus:
            yield bus
        return
    with TansuBroker() as broker:
        async with KafkaBus(broker.bootstrap, fetch_wait_max_ms=fetch_wait_ms) as bus:
            yield bus


TRANSPORTS: dict[str, tuple[str, Callable[[], object]]] = {
    "local": ("LocalBus (memory)", local_memory),
    "wal": ("LocalBus (fsynced WAL)", local_wal),
    "kafka": ("KafkaBus (Tansu, loopback)", kafka),
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sequential publishes")
    parser.add_argument("--batch", type=int, default=10_000, help="records in publish_many")
    parser.add_argument("--only", default="local,wal,kafka")
    parser.add_argument("--pace", type=float, default=0.001, help="seconds between publishes")
    parser.add_argument("--fetch-wait-ms", type=int, default=20, help="KafkaBus fetch wait")
    args = parser.parse_args()
    print(
        f"{args.n} sequential publishes of 200 B every {args.pace * 1e3:g} ms, then "
        f"publish_many of {args.batch}; Kafka fetch.wait.max.ms={args.fetch_wait_ms}"
    )
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    header = f"{'transport':<28}{'ack p50':>9}{'ack p99':>9}{'e2e p50':>9}{'e2e p99':>9}"
    print(header + f"{'many rec/s':>12}{'join':>8}")
    for name in args.only.split(","):
        label, factory = TRANSPORTS[name]
        kwargs = {"fetch_wait_ms": args.fetch_wait_ms} if name == "kafka" else {}
        async with factory(**kwargs) as bus:  # type: ignore[operator]
            r = await measure(bus, args.n, args.batch, args.pace)
        print(
            f"{label:<28}{r['ack_p50']:>7.3f}ms{r['ack_p99']:>7.3f}ms"
            f"{r['e2e_p50']:>7.3f}ms{r['e2e_p99']:>7.3f}ms{r['many_rps']:>12,.0f}"
            f"{r['join_s']:>7.2f}s"
        )


if __name__ == "__main__":
    asyncio.run(main())
