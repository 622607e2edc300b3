"""The embedded engine: ingest from the bus into PostgreSQL, evaluate sinks, keep retention.

One tick is: ingest every record waiting on the bus (one transaction per batch); then, in
one transaction, set the engine clock, bring the materialised views up to date (windows of
EMIT ON WINDOW CLOSE views closed since the last tick are appended; aggregating views that
sinks read are computed once), compare each sink's view with what it emitted before (in
PostgreSQL, so only changes cross the wire) and record the changes with the records to
send; then publish them; and, once a minute of engine time, delete raw rows older than the
retention. ``start()`` runs ticks every ``tick`` seconds; replay and tests call
``run_tick()`` themselves on a virtual clock.

Delivery guarantees, argued:

- Ingest is exactly-once. The rows of a batch and the bus offsets they came from are
  written in one PostgreSQL transaction (``gridctl_engine.offsets``); records at offsets
  already recorded are skipped. Bus offsets are committed only after that transaction, so
  a crash in between replays records that are then recognised and skipped.
- Sinks neither repeat nor drop a command. "Publish, then record" repeats everything
  published since the last record after a crash; "record, then publish" drops what was
  recorded but not yet published. We record the intent: the new emitted state and the
  records to send are written in one transaction (a transactional outbox,
  ``gridctl_engine.outbox``); then the outbox is published and, once the bus acknowledged,
  deleted. A crash before the commit loses nothing (the next tick computes the same diff
  from the old state); a crash after it leaves the outbox, which ``start()`` publishes
  first, before any newer decision, so per-key order holds. The one window left — the bus
  acknowledged but the outbox rows not yet deleted — re-sends identical records with the
  same keys: an upsert of the same value (consumers deduplicate by key, as they must with
  RisingWave's at-least-once sinks) or an alert with the same key, never a different or a
  missing command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, Message, Record, Subscription
from pipeline.compiler.bootstrap import SCHEMA
from pipeline.engine import metrics
from pipeline.engine.catalog import Sink, Source, View, load, load_views
from pipeline.engine.clock import wall_clock
from pipeline.engine.rows import Emit, Skip, decode_fields, sink_query, to_row

log = logging.getLogger(__name__)

GROUP = "gridctl-engine"
Clock = Callable[[], datetime]


class Engine:
    """Run the compiled pipeline of the database at ``dsn`` against ``bus``.

    ``clock`` is a callable returning the engine time (e.g. a
    :class:`~pipeline.engine.clock.VirtualClock`); ``None`` means wall time, and then views
    read PostgreSQL's own ``now()`` between ticks as well.
    """

    def __init__(
        self,
        dsn: str,
        bus: Bus,
        *,
        tick: float = 1.0,
        clock: Clock | None = None,
        retention: timedelta = timedelta(hours=24),
        batch_size: int = 5000,
        max_records_per_tick: int = 500_000,
        catalog_refresh: float = 5.0,
        work_mem: str = "64MB",
        group: str = GROUP,
    ) -> None:
        self.dsn = dsn
        self.bus = bus
        self.tick = tick
        self._clock = clock
        self.retention = retention
        self.batch_size = batch_size
        self.max_records_per_tick = max_records_per_tick
        self.catalog_refresh = catalog_refresh
        self.work_mem = work_mem
        self.group = group
        self._catalog_at = 0.0
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._sub: Subscription | None = None
        self._topics: tuple[str, ...] = ()
        self._sources: dict[str, list[Source]] = {}
        self._sinks: list[Sink] = []
        self._views: list[View] = []
        self._outbox_dirty = False
        self._offsets: dict[tuple[str, int], int] = {}
        self._last_tick: datetime | None = None
        self._last_retention: datetime | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    # -- clock ---------------------------------------------------------------------------
    def set_clock(self, clock: Clock | None) -> None:
        """Switch to a virtual clock (a callable) or back to wall time (``None``)."""
        self._clock = clock

    def now(self) -> datetime:
        return (self._clock or wall_clock)()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, *, loop: bool = True) -> None:
        """Connect, read the catalog and subscribe; publish a leftover outbox first.

        With ``loop`` (default) a task runs :meth:`run_tick` every ``tick`` seconds;
        without it the caller drives ticks (replay, tests).
        """
        self._conn = await self._connect()
        await self._reload_catalog()
        async with self._conn.cursor() as cur:
            if getattr(self.bus, "_path", "") is None:
                # A memory-only bus starts its offsets at 0 again: stored ones are stale.
                await cur.execute(f"DELETE FROM {SCHEMA}.offsets")
            await cur.execute(f"SELECT topic, part, next_offset FROM {SCHEMA}.offsets")
            self._offsets = {(t, p): o for t, p, o in await cur.fetchall()}
        await self._conn.commit()
        await self._flush_outbox()
        if loop:
            self._task = asyncio.create_task(self._loop(), name="gridctl-engine")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=False)
        # Top-N and aggregates over the fresh samples sort ~10^5 rows per tick at 10k
        # connectors: keep those sorts in memory.
        await conn.execute(f"SET work_mem = '{self.work_mem}'")  # type: ignore[arg-type]
        # Sink values are JSON built by PostgreSQL: timestamps in UTC whatever the server.
        await conn.execute("SET TIME ZONE 'UTC'")
        await conn.commit()
        return conn

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            await self._sub.close()
            self._sub = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.run_tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine tick failed; retrying next tick")
                await self._recover()
            await asyncio.sleep(max(0.0, self.tick - (time.monotonic() - started)))

    async def _recover(self) -> None:
        if self._conn is not None and self._conn.closed:
            self._conn = await self._connect()
        elif self._conn is not None:
            await self._conn.rollback()

    # -- one tick ------------------------------------------------------------------------
    async def run_tick(self) -> list[Emit]:
        """Ingest what is waiting, evaluate every sink, publish; returns what was sent."""
        async with self._lock:
            started = time.perf_counter()
            now = self.now()
            if time.monotonic() - self._catalog_at >= self.catalog_refresh:
                await self._reload_catalog()
            await self._ingest(now)
            sent = await self._evaluate_sinks(now)
            await self._retention(now)
            if self.ticks % 30 == 29:
                await self._vacuum()
            self._last_tick = now
            self.ticks += 1
            metrics.TICK.observe(time.perf_counter() - started)
            return sent

    def _require(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("Engine.start() first")
        return self._conn

    async def _reload_catalog(self) -> None:
        """Re-read sources and sinks (a migration may have added some); resubscribe if the
        set of topics changed. Done every ``catalog_refresh`` wall seconds."""
        self._catalog_at = time.monotonic()
        sources, sinks = await load(self._require())
        self._views = await load_views(self._require())
        await self._require().commit()
        by_topic: dict[str, list[Source]] = {}
        for s in sources:
            by_topic.setdefault(s.topic, []).append(s)
        self._sources = by_topic
        self._sinks = sinks
        wanted = tuple(sorted(by_topic))
        if wanted != self._topics:
            if self._sub is not None:
                await self._sub.commit()
                await self._sub.close()
            self._sub = self.bus.subscribe(list(wanted), group=self.group) if wanted else None
            self._topics = wanted

    # -- ingest --------------------------------------------------------------------------
    async def _ingest(self, now: datetime) -> None:
        if self._sub is None:
            return
        total = 0
        while total < self.max_records_per_tick:
            batch = await self._sub.batch(max_records=self.batch_size, timeout=0)
            if not batch:
                break
            total += len(batch)
            await self._write_batch(batch, now)
            await self._sub.commit()
            if len(batch) < self.batch_size:
                break
        metrics.LAG.set(self.batch_size if total >= self.max_records_per_tick else 0)

    async def _write_batch(self, batch: Sequence[Record], now: datetime) -> None:
        conn = self._require()
        appends: dict[str, list[tuple[Any, ...]]] = {}
        upserts: dict[str, dict[tuple[Any, ...], tuple[Any, ...] | None]] = {}
        marks: dict[str, datetime] = {}
        offsets: dict[tuple[str, int], int] = {}
        for record in batch:
            pos = (record.topic, record.partition)
            if record.offset < self._offsets.get(pos, 0):
                continue  # ingested before a crash, redelivered by the bus
            offsets[pos] = max(offsets.get(pos, 0), record.offset + 1)
            for source in self._sources.get(record.topic, ()):
                try:
                    self._route(source, record, appends, upserts, marks, now)
                except Skip as exc:
                    metrics.DROPPED.labels(record.topic, exc.reason).inc()
                    log.warning("skipped %s@%s: %s", record.topic, record.offset, exc)
        async with conn.cursor() as cur:
            for name, rows in appends.items():
                source = self._source(name)
                cols = ", ".join(f'"{c}"' for c in source.column_names)
                async with cur.copy(f'COPY "{name}" ({cols}) FROM STDIN') as copy:
                    for row in rows:
                        await copy.write_row(row)
            for name, by_key in upserts.items():
                await self._upsert(cur, self._source(name), by_key)
            for name, mark in marks.items():
                await cur.execute(
                    f"UPDATE {SCHEMA}.sources SET watermark_ts = GREATEST("
                    "COALESCE(watermark_ts, '-infinity'::TIMESTAMPTZ), "
                    "%s::TIMESTAMPTZ - COALESCE(watermark_delay, INTERVAL '0 SECONDS')) "
                    "WHERE name = %s",
                    (mark, name),
                )
            if offsets:
                await cur.executemany(
                    f"INSERT INTO {SCHEMA}.offsets (topic, part, next_offset) VALUES (%s, %s, %s) "
                    "ON CONFLICT (topic, part) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                    [(t, p, o) for (t, p), o in offsets.items()],
                )
        await conn.commit()
        self._offsets.update(offsets)
        for name, rows in appends.items():
            metrics.INGESTED.labels(self._source(name).topic).inc(len(rows))
        for name, by_key in upserts.items():
            metrics.INGESTED.labels(self._source(name).topic).inc(len(by_key))

    def _source(self, name: str) -> Source:
        for sources in self._sources.values():
            for s in sources:
                if s.name == name:
                    return s
        raise KeyError(name)

    def _route(
        self,
        source: Source,
        record: Record,
        appends: dict[str, list[tuple[Any, ...]]],
        upserts: dict[str, dict[tuple[Any, ...], tuple[Any, ...] | None]],
        marks: dict[str, datetime],
        now: datetime,
    ) -> None:
        """Place one record: a row to append, a row to upsert, or a key to delete."""
        if record.value is None:
            if source.format != "UPSERT" or source.append_only:
                return  # a null message means nothing to a PLAIN source (RisingWave skips it)
            key = self._tombstone_key(source, record)
            upserts.setdefault(source.name, {})[key] = None
            return
        fields = decode_fields(record.topic, record.value)
        row = to_row(source, record.key, fields)
        if source.watermark_column:
            ts = fields.get(source.watermark_column)
            if isinstance(ts, datetime):
                if source.name not in marks or ts > marks[source.name]:
                    marks[source.name] = ts
                if record.topic.endswith(topic_names.METER_VALUES):
                    metrics.METER_AGE.observe(max(0.0, (now - ts).total_seconds()))
        if source.append_only:
            appends.setdefault(source.name, []).append(row)
            return
        names = source.column_names
        key = tuple(row[names.index(c)] for c in source.primary_key)
        if any(k is None for k in key):
            raise Skip("no_key", f"primary key {source.primary_key} is null")
        pending = upserts.setdefault(source.name, {})
        if source.version_column and pending.get(key) is not None:
            vi = names.index(source.version_column)
            old = pending[key]
            if old is not None and (row[vi] or 0) < (old[vi] or 0):
                return  # an older revision arrived after a newer one in the same batch
        pending[key] = row

    def _tombstone_key(self, source: Source, record: Record) -> tuple[Any, ...]:
        if source.key_column and source.primary_key == (source.key_column,):
            if record.key is None:
                raise Skip("no_key", "tombstone without a key")
            return (record.key.encode(),)
        if len(source.primary_key) == 1:
            return (record.key,)
        raise Skip("tombstone", "cannot map a key to a composite primary key")

    async def _upsert(
        self,
        cur: psycopg.AsyncCursor[Any],
        source: Source,
        by_key: dict[tuple[Any, ...], tuple[Any, ...] | None],
    ) -> None:
        names = source.column_names
        cols = ", ".join(f'"{c}"' for c in names)
        pk = ", ".join(f'"{c}"' for c in source.primary_key)
        updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in names if c not in source.primary_key)
        sql = (
            f'INSERT INTO "{source.name}" ({cols}) VALUES ({", ".join(["%s"] * len(names))}) '
            f"ON CONFLICT ({pk}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING")
        )
        if source.version_column and updates:
            v = source.version_column
            sql += f' WHERE COALESCE("{source.name}"."{v}", 0) <= COALESCE(EXCLUDED."{v}", 0)'
        rows = [r for r in by_key.values() if r is not None]
        deletes = [k for k, r in by_key.items() if r is None]
        if deletes:
            cond = " AND ".join(f'"{c}" = %s' for c in source.primary_key)
            await cur.executemany(f'DELETE FROM "{source.name}" WHERE {cond}', deletes)
        if rows:
            await cur.executemany(sql, rows)

    # -- sinks ---------------------------------------------------------------------------
    async def _evaluate_sinks(self, now: datetime) -> list[Emit]:
        conn = self._require()
        emits: list[Emit] = []
        changes: dict[str, dict[str, str | None]] = {}
        async with conn.cursor(row_factory=dict_row) as cur:
            await self._materialise(cur, now)
            try:
                results = await self._read_sinks(cur, savepoints=False)
            except psycopg.Error:
                # A view is missing or broken (e.g. mid-rebuild): read sink by sink.
                await conn.rollback()
                await self._materialise(cur, now)
                results = await self._read_sinks(cur, savepoints=True)
            for sink, rows in results:
                # Keys may repeat if a view breaks its own primary key: the last row wins.
                changed = dict(rows)
                emits.extend(Emit(sink.topic, k, v) for k, v in changed.items())
                if changed:
                    changes[sink.name] = changed
            for name, changed in changes.items():
                gone = [(name, k) for k, v in changed.items() if v is None]
                kept = [(name, k, v, now) for k, v in changed.items() if v is not None]
                if gone:
                    await cur.executemany(
                        f"DELETE FROM {SCHEMA}.sink_state WHERE sink = %s AND key = %s", gone
                    )
                if kept:
                    await cur.executemany(
                        f"INSERT INTO {SCHEMA}.sink_state (sink, key, value, emitted_at) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (sink, key) DO UPDATE SET "
                        "value = EXCLUDED.value, emitted_at = EXCLUDED.emitted_at",
                        kept,
                    )
            if emits:
                await cur.executemany(
                    f"INSERT INTO {SCHEMA}.outbox (topic, key, value, ts) VALUES (%s, %s, %s, %s)",
                    [(e.topic, e.key, e.value, now) for e in emits],
                )
        await conn.commit()
        for name, changed in changes.items():
            metrics.SINK_RECORDS.labels(name).inc(len(changed))
        if emits or self._outbox_dirty:
            await self._flush_outbox()
        return emits

    async def _materialise(self, cur: psycopg.AsyncCursor[Any], now: datetime) -> None:
        """Set the clock and bring materialised views up to date, in dependency order,
        inside the tick's transaction: EOWC views get the windows closed since the last
        tick appended (their scans start at the window holding the previous watermark),
        cached views store their result once so the views above read it instead of
        recomputing it. The statements go in one pipeline: one round trip, not dozens."""
        marks: dict[str, tuple[datetime | None, datetime | None]] = {}
        if any(v.kind == "eowc" for v in self._views):
            await cur.execute(
                f"SELECT name, emitted_until, {SCHEMA}.watermark(VARIADIC CASE "
                "WHEN cardinality(sources) = 0 THEN ARRAY['']::TEXT[] ELSE sources END) AS mark "
                f"FROM {SCHEMA}.views WHERE kind = 'eowc'"
            )
            marks = {r["name"]: (r["emitted_until"], r["mark"]) for r in await cur.fetchall()}
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (f"UPDATE {SCHEMA}.clock SET ts = %s WHERE id", (None if self._clock is None else now,))
        ]
        cached: list[str] = []
        for view in self._views:
            if view.kind == "eowc":
                done, mark = marks.get(view.name, (None, None))
                if mark is None or (done is not None and mark <= done):
                    continue
                since = "" if done is None else done.isoformat()
                statements += [
                    ("SELECT set_config('gridctl.window_since', %s, true)", (since,)),
                    (
                        f'INSERT INTO {SCHEMA}."{view.name}__closed" '
                        f'SELECT * FROM {SCHEMA}."{view.name}__open" AS o '
                        "WHERE o.window_end > COALESCE(%s::TIMESTAMPTZ, '-infinity') "
                        "AND o.window_end <= %s",
                        (done, mark),
                    ),
                    (
                        f"UPDATE {SCHEMA}.views SET emitted_until = %s WHERE name = %s",
                        (mark, view.name),
                    ),
                    ("SELECT set_config('gridctl.window_since', '', true)", ()),
                ]
            elif view.kind == "top1" and view.refresh_sql and self._append_only(view):
                cached.append(view.name)
                statements += [
                    *((sql, ()) for sql in view.refresh_sql.split(";\n")),
                    (
                        "SELECT set_config('gridctl.cached', %s, true)",
                        ("," + ",".join(cached) + ",",),
                    ),
                ]
            else:
                cached.append(view.name)
                statements += [
                    # DELETE, not TRUNCATE: TRUNCATE invalidates every cached plan that
                    # reads the table, and replanning the views each tick costs more.
                    (f'DELETE FROM {SCHEMA}."{view.name}__cache"', ()),
                    (
                        f'INSERT INTO {SCHEMA}."{view.name}__cache" '
                        f'SELECT * FROM {SCHEMA}."{view.name}__live"',
                        (),
                    ),
                    (
                        "SELECT set_config('gridctl.cached', %s, true)",
                        ("," + ",".join(cached) + ",",),
                    ),
                ]
        async with self._require().pipeline():
            for sql, params in statements:
                await cur.execute(sql, params or None)  # type: ignore[arg-type]

    def _append_only(self, view: View) -> bool:
        """An incremental top-1 is exact only over one append-only source table."""
        names = {s.name: s for sources in self._sources.values() for s in sources}
        return len(view.sources) == 1 and (
            view.sources[0] in names and names[view.sources[0]].append_only
        )

    async def _read_sinks(
        self, cur: psycopg.AsyncCursor[Any], *, savepoints: bool
    ) -> list[tuple[Sink, list[tuple[str, str]]]]:
        """(key, value) JSON texts of every sink's view, UPSERT sinks first, then by name."""
        conn = self._require()
        out: list[tuple[Sink, list[tuple[str, str]]]] = []
        for sink in sorted(self._sinks, key=lambda s: (not s.upsert, s.name)):
            try:
                async with conn.transaction() if savepoints else contextlib.nullcontext():
                    await cur.execute(sink_query(sink), {"sink": sink.name})  # type: ignore[arg-type]
                    out.append((sink, [(r["key"], r["value"]) for r in await cur.fetchall()]))
            except psycopg.Error as exc:
                if not savepoints:
                    raise
                log.error("sink %s: cannot read %s: %s", sink.name, sink.view_name, exc)
        await cur.execute("SELECT set_config('gridctl.cached', '', true)")
        return out

    async def _flush_outbox(self) -> None:
        """Publish the outbox in order; delete what the bus acknowledged."""
        conn = self._require()
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT seq, topic, key, value FROM {SCHEMA}.outbox ORDER BY seq")
            pending = await cur.fetchall()
        await conn.commit()
        if not pending:
            self._outbox_dirty = False
            return
        # Until the bus acknowledged, every tick retries (even one that decides nothing).
        self._outbox_dirty = True
        await self.bus.publish_many(
            [Message(t, k, None if v is None else v.encode()) for _, t, k, v in pending]
        )
        await conn.execute(f"DELETE FROM {SCHEMA}.outbox WHERE seq <= %s", (pending[-1][0],))
        await conn.commit()
        self._outbox_dirty = False

    async def _vacuum(self) -> None:
        """Vacuum the caches: each tick rewrites them (or updates a row per connector that
        reported), and between autovacuum runs the dead versions would slow every scan."""
        conn = self._require()
        names = [v.name for v in self._views if v.kind in ("top1", "cached")]
        if not names:
            return
        await conn.set_autocommit(True)
        try:
            for name in names:
                await conn.execute(f'VACUUM {SCHEMA}."{name}__cache"')  # type: ignore[arg-type]
        finally:
            await conn.set_autocommit(False)

    # -- retention -----------------------------------------------------------------------
    async def _retention(self, now: datetime) -> None:
        if self._last_retention and now - self._last_retention < timedelta(minutes=1):
            return
        self._last_retention = now
        conn = self._require()
        cutoff = now - self.retention
        for sources in self._sources.values():
            for s in sources:
                if s.append_only and s.watermark_column:
                    await conn.execute(
                        f'DELETE FROM "{s.name}" WHERE "{s.watermark_column}" < %s',  # type: ignore[arg-type]
                        (cutoff,),
                    )
        for view in self._views:
            if view.kind == "eowc":
                await conn.execute(
                    f'DELETE FROM {SCHEMA}."{view.name}__closed" WHERE window_end < %s',  # type: ignore[arg-type]
                    (cutoff,),
                )
        append_sinks = [s.name for s in self._sinks if not s.upsert]
        if append_sinks:
            await conn.execute(
                f"DELETE FROM {SCHEMA}.sink_state WHERE sink = ANY(%s) AND emitted_at < %s",
                (append_sinks, now - 2 * self.retention),
            )
        await conn.commit()
