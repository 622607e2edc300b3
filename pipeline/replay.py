"""Replay recorded events through the pipeline on a virtual clock.

Input and output lines have one shape: ``{"topic", "key", "value": {...} | null, "ts"}``.
The clock starts at the first record's ``ts`` and steps by ``tick`` up to the last record
(or ``until``); at each step every record with ``ts <= clock`` is published on an
in-process bus, the engine runs one tick, and every record its sinks emit is written with
``ts`` = the step's time. The database is a throw-away embedded PostgreSQL unless a DSN
is given. Nothing reads the wall clock, so the same input gives the same bytes out.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pipeline import contracts
from pipeline.bus.local import LocalBus
from pipeline.engine import Emit, Engine, ReplayError, VirtualClock
from pipeline.engine.apply import EMBEDDED_BOOTSTRAP, MIGRATIONS, apply_migrations
from pipeline.engine.rows import model_for


@dataclass(frozen=True)
class InputRecord:
    line: int
    topic: str
    key: str | None
    value: bytes | None
    ts: datetime


@dataclass
class ReplayStats:
    """What a replay did: input records, steps, output records, time taken."""

    records: int = 0
    ticks: int = 0
    outputs: int = 0
    wall_seconds: float = 0.0
    virtual_seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.records / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def speedup(self) -> float:
        """Multiple of real time: virtual seconds replayed per wall second."""
        return self.virtual_seconds / self.wall_seconds if self.wall_seconds else 0.0


def parse_ts(text: Any, line: int, field: str) -> datetime:
    if not isinstance(text, str):
        raise ReplayError(line, field, "expected an RFC 3339 timestamp string")
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise ReplayError(line, field, f"not an RFC 3339 timestamp: {text!r}") from exc
    if ts.tzinfo is None:
        raise ReplayError(line, field, "timestamp needs Z or an offset")
    return ts


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_line(text: str, line: int) -> InputRecord:
    """One input line -> record, or :class:`ReplayError` naming the line and field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(line, "$", f"not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ReplayError(line, "$", "expected a JSON object")
    for name in ("topic", "key", "value", "ts"):
        if name not in data:
            raise ReplayError(line, name, "required field is missing")
    topic = data["topic"]
    if not isinstance(topic, str) or not topic:
        raise ReplayError(line, "topic", "expected a non-empty string")
    key = data["key"]
    if key is not None and not isinstance(key, str):
        raise ReplayError(line, "key", "expected a string or null")
    value = data["value"]
    if value is not None and not isinstance(value, dict):
        raise ReplayError(line, "value", "expected an object or null")
    ts = parse_ts(data["ts"], line, "ts")
    raw = None if value is None else json.dumps(value, separators=(",", ":")).encode()
    model = model_for(topic)
    if raw is not None and model is not None:
        try:
            contracts.decode(model, raw, topic=topic)
        except contracts.ContractError as exc:
            field = "value" + exc.field.removeprefix("$")
            raise ReplayError(line, field, exc.reason) from exc
    return InputRecord(line, topic, key, raw, ts)


def read_input(lines: Iterable[str]) -> list[InputRecord]:
    """Parse every non-blank line; records ordered by ``ts`` (input order among equals)."""
    records = [parse_line(text, n) for n, text in enumerate(lines, 1) if text.strip()]
    records.sort(key=lambda r: r.ts)
    return records


def output_line(emit: Emit, ts: datetime) -> str:
    value = None if emit.value is None else json.loads(emit.value)
    record = {"topic": emit.topic, "key": emit.key, "value": value, "ts": format_ts(ts)}
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


async def replay(
    records: list[InputRecord],
    out: IO[str],
    *,
    tick: timedelta = timedelta(seconds=1),
    until: datetime | None = None,
    dsn: str | None = None,
    vars: Mapping[str, str] | None = None,
    migrations: str | Path = MIGRATIONS,
) -> ReplayStats:
    """Run the pipeline over ``records`` and write every sink record to ``out``."""
    if tick <= timedelta(0):
        raise ValueError("tick must be positive")
    stats = ReplayStats(records=len(records))
    if not records:
        return stats
    if dsn is not None:
        return await _run(records, out, tick, until, dsn, vars, migrations, stats)
    from pipeline.embedded_pg import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="gridctl-replay-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        try:
            return await _run(records, out, tick, until, server.dsn, vars, migrations, stats)
        finally:
            server.destroy()


def _migrate(dsn: str, migrations: str | Path, vars: Mapping[str, str] | None) -> None:
    values = {"kafka_bootstrap": EMBEDDED_BOOTSTRAP, **(vars or {})}
    try:
        from pipeline.migrate import apply
    except ImportError:  # the runner is optional: compile and apply without history
        apply_migrations(dsn, migrations, values)
        return
    apply(dsn, migrations, values)


async def _run(
    records: list[InputRecord],
    out: IO[str],
    tick: timedelta,
    until: datetime | None,
    dsn: str,
    vars: Mapping[str, str] | None,
    migrations: str | Path,
    stats: ReplayStats,
) -> ReplayStats:
    _migrate(dsn, migrations, vars)
    start = records[0].ts
    end = until if until is not None else records[-1].ts
    bus = LocalBus(retention_records=max(200_000, len(records) + 1))
    clock = VirtualClock(start)
    prefix = (vars or {}).get("topic_prefix", "")
    engine = Engine(dsn, bus, clock=clock, tick=tick.total_seconds(), topic_prefix=prefix)
    began = time.perf_counter()
    await bus.start()
    await engine.start(loop=False)
    try:
        i = 0
        now = start
        while True:
            clock.set(now)
            batch = []
            while i < len(records) and records[i].ts <= now:
                batch.append(records[i])
                i += 1
            for r in batch:
                await bus.publish(r.topic, r.key, r.value)
            for emit in await engine.run_tick():
                out.write(output_line(emit, now) + "\n")
                stats.outputs += 1
            stats.ticks += 1
            if now >= end:
                break
            now = min(now + tick, end)
    finally:
        await engine.stop()
        await bus.stop()
    stats.wall_seconds = time.perf_counter() - began
    stats.virtual_seconds = (end - start).total_seconds()
    return stats
