"""Prometheus metrics of the embedded engine (names from ``pipeline.metrics_names``).

Created once per process and shared by every Engine instance: tests and replay start
several engines in one process, and prometheus_client refuses a second registration of the
same name.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client import Counter, Gauge, Histogram

from pipeline import metrics_names as names
from pipeline.prometheus import metric as _get

INGESTED = _get(Counter, names.ENGINE_RECORDS_INGESTED, "Records ingested.", labelnames=["topic"])
REJECTED = _get(
    Counter,
    names.ENGINE_RECORDS_REJECTED,
    "Records the engine could not ingest (contract violations, values out of a column's "
    "range), each sent to ingest.rejected.",
    labelnames=["topic", "reason"],
)
SINK_RECORDS = _get(
    Counter, names.ENGINE_SINK_RECORDS, "Records emitted by engine sinks.", labelnames=["sink"]
)
LAG = _get(Gauge, names.ENGINE_LAG_RECORDS, "Records left on the bus after the last ingest.")
TICK = _get(Histogram, names.ENGINE_TICK_SECONDS, "Duration of one engine tick.")
INGEST_LATENCY = _get(
    Histogram,
    names.INGEST_LATENCY_SECONDS,
    "Time from a record's append to the bus to its ingest by the engine (wall clock).",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
METER_AGE = _get(
    Histogram,
    names.METER_DATA_AGE_SECONDS,
    "Age of meter samples (engine clock - event_ts) when ingested.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
LAST_TICK = _get(
    Gauge,
    names.ENGINE_LAST_TICK,
    "Unix time at which the engine last completed a tick (a stalled engine stops it).",
)
STAGE_WALL = _get(
    Counter,
    names.ENGINE_STAGE_SECONDS,
    "Wall seconds spent in each stage of the engine's ticks (ingest, views, sink_diff, "
    "publish, outbox).",
    labelnames=["stage"],
)
STAGE_CPU = _get(
    Counter,
    names.ENGINE_STAGE_CPU_SECONDS,
    "CPU seconds of the engine's thread during each stage. Wall minus this is time spent "
    "waiting (on PostgreSQL or the bus); where the engine shares a thread with the "
    "gateway, this includes the gateway's callbacks run in between.",
    labelnames=["stage"],
)


#: the running tick's own figures (stage -> wall seconds, and counts), for its log line
_LEDGER: ContextVar[dict[str, float] | None] = ContextVar("engine_tick_ledger", default=None)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the wall and thread-CPU time of one stage of a tick: the figures that tell
    whether a slow tick is the engine's CPU, PostgreSQL, or a loop shared with others."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        spent = time.perf_counter() - wall
        STAGE_WALL.labels(name).inc(spent)
        STAGE_CPU.labels(name).inc(time.thread_time() - cpu)
        tally(name, spent)


def tally(name: str, amount: float) -> None:
    """Add to the running tick's ledger (nothing outside :func:`ledger`)."""
    book = _LEDGER.get()
    if book is not None:
        book[name] = book.get(name, 0.0) + amount


@contextlib.contextmanager
def ledger() -> Iterator[dict[str, float]]:
    """The figures of one tick: the counters above sum over every tick, and a tick that
    is slow once (an event's first, the one after it) disappears in them."""
    book: dict[str, float] = {}
    token = _LEDGER.set(book)
    try:
        yield book
    finally:
        _LEDGER.reset(token)
