"""The embedded engine: ingest from the bus into PostgreSQL, evaluate sinks, keep retention.

One tick is: ingest every record waiting on the bus (one transaction per batch); then, in
one transaction, set the engine clock, bring the materialised views up to date (windows of
EMIT ON WINDOW CLOSE views closed since the last tick are appended; aggregating and joining
views that sinks read are computed once, each reading the results of the ones below), compare
each sink's view with what it emitted before and record the changes with the records to send
(one set-based statement per sink, in PostgreSQL); then publish them in one batch; and, once
a minute of engine time, delete raw rows no view needs any more. ``start()`` runs ticks
every ``tick`` seconds; replay and tests call ``run_tick()`` themselves on a virtual clock.

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
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, BusError, Subscription
from pipeline.compiler.bootstrap import SCHEMA
from pipeline.engine import metrics
from pipeline.engine.catalog import Sink, Source, View, load, load_views, load_watermarks
from pipeline.engine.clock import wall_clock
from pipeline.engine.ingest import IngestMixin
from pipeline.engine.rows import Emit, sink_key_sql
from pipeline.engine.sinks import SinkMixin

log = logging.getLogger(__name__)

GROUP = "gridctl-engine"
Clock = Callable[[], datetime]


class Engine(IngestMixin, SinkMixin):
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
        retention: timedelta | None = None,
        batch_size: int = 5000,
        max_records_per_tick: int = 500_000,
        catalog_refresh: float = 5.0,
        work_mem: str = "64MB",
        group: str = GROUP,
        bell_settle: float = 0.02,
        catch_up_timeout: float = 30.0,
        topic_prefix: str = "",
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
        self.bell_settle = bell_settle
        self.catch_up_timeout = catch_up_timeout
        #: the deployment's ``${topic_prefix}``: the catalog's topics carry it already;
        #: the engine's own topics (dead letters) and the DR doorbell get it here
        self.topic_prefix = topic_prefix
        self.command_topic = topic_prefix + topic_names.SET_CHARGING_PROFILE
        self._catalog_at = 0.0
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._sub: Subscription | None = None
        self._topics: tuple[str, ...] = ()
        self._sources: dict[str, list[Source]] = {}
        self._sinks: list[Sink] = []
        self._views: list[View] = []
        self._outbox_dirty = False
        self.statement_times: list[tuple[str, float]] | None = None
        self._offsets: dict[tuple[str, int], int] = {}
        self._watermarks: dict[str, datetime] = {}
        self._last_tick: datetime | None = None
        self._last_retention: datetime | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: group-less reader of the DR topic whose only job is to end the wait between
        #: ticks early (see _wait_next); its records are ingested by ``_sub`` as usual
        self._bell: Subscription | None = None
        self.ticks = 0
        #: ``time.monotonic()`` at the end of the last tick that completed (None: none yet)
        self.last_tick_at: float | None = None

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
            if not self.bus.keeps_offsets:
                # A memory-only bus starts its offsets at 0 again: stored ones are stale.
                await cur.execute(f"DELETE FROM {SCHEMA}.offsets")
            await cur.execute(f"SELECT topic, part, next_offset FROM {SCHEMA}.offsets")
            self._offsets = {(t, p): o for t, p, o in await cur.fetchall()}
        await self._conn.commit()
        await self._reconcile_offsets()
        await self._flush_outbox()
        if loop:
            self._bell = self.bus.subscribe(
                [self.topic_prefix + topic_names.DEMAND_RESPONSE], group=None, from_beginning=False
            )
            self._task = asyncio.create_task(self._loop(), name="gridctl-engine")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=False)
        # Plan every statement when it runs, never from a prepared plan: a tick's views
        # read caches whose size jumps when an event starts (0 -> one row per station), and
        # a plan prepared while they were empty nests loops over them. At 10k connectors
        # the first CURTAIL after a quiet spell took 1.6 s of CPU and the tick after it
        # 4.1 s with prepared plans, 0.66 s and 0.40 s planned fresh; planning costs ~10 ms
        # of a quiet tick (bench/engine_tick.py --quiet).
        conn.prepare_threshold = None
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
        if self._bell is not None:
            with contextlib.suppress(BusError):
                await self._bell.close()
            self._bell = None
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

    async def _catch_up(self) -> None:
        """Ingest until the bus has nothing older for us, before the first evaluation.

        After a restart on Kafka the consumer group joins seconds later; evaluating sinks
        before then would run on stale tables (a signal extended while we were down looks
        ended: a tombstone would clear limits that should stay). The same rule as in the
        control law: never act on stale data. Bounded by ``catch_up_timeout``, after
        which the engine proceeds and says so.
        """
        if self._sub is None:
            return
        deadline = time.monotonic() + self.catch_up_timeout
        while time.monotonic() < deadline:
            lag = await self._sub.lag()
            async with self._lock:
                await self._ingest(self.now())
            # Live traffic keeps arriving, so "caught up" is "joined, and the rest fits in
            # the batch just ingested", not an exact zero.
            if lag is not None and lag < self.batch_size:
                return
            await asyncio.sleep(0.05)
        log.warning(
            "engine: bus not caught up after %.0f s; evaluating anyway", self.catch_up_timeout
        )

    async def _loop(self) -> None:
        try:
            await self._catch_up()
        except Exception as exc:  # the database is away at start: the loop below recovers
            log.warning("engine: catch-up failed (%s); ticking anyway", _one_line(exc))
            await self._recover()
        failing_since: float | None = None
        while True:
            started = time.monotonic()
            commanded = False
            try:
                sent = await self.run_tick()
                commanded = any(e.topic == self.command_topic for e in sent)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # One line per outage, not a traceback per tick: /healthz and the
                # tick-age alert say it is down; the log says why and when it is back.
                if failing_since is None:
                    failing_since = started
                    log.warning("engine tick failed, retrying each tick: %s", _one_line(exc))
                    log.debug("engine tick failure", exc_info=True)
                await self._recover()
            else:
                if failing_since is not None:
                    log.warning(
                        "engine ticking again after %.1f s of failed ticks",
                        time.monotonic() - failing_since,
                    )
                    failing_since = None
            # After a tick that sent commands, a whole tick's rest: the gateway now sends
            # them to thousands of chargers on the same cores, and the next tick (the
            # answers' readings, every view again) would take them from it. A new signal
            # still rings the doorbell at once. bench/dr_latency.py alternated with and
            # without (idle machine): p99 at 5,000 0.99/1.09 s against 1.30/1.81 s, at
            # 10,000 1.81/3.27 s against 2.70/3.31 s.
            if commanded:
                await self._wait_next(self.tick)
            else:
                await self._wait_next(max(0.0, self.tick - (time.monotonic() - started)))

    async def _wait_next(self, delay: float) -> None:
        """Sleep until the next tick, or only until a DR signal arrives.

        A CURTAIL must not wait for the next tick: with a 1 s tick that wait alone was
        up to 1 s of the API -> charger latency (``bench/dr_latency.py``). Signals are
        rare, so ticking at once for each costs nothing; meter values still wait.
        """
        bell = self._bell
        if bell is None or delay <= 0:
            await asyncio.sleep(delay)
            return
        try:
            rang = await bell.batch(max_records=1000, timeout=delay)
        except BusError as exc:
            log.warning("DR doorbell unreadable, sleeping instead: %r", exc)
            await asyncio.sleep(delay)
            return
        if rang:
            # On Kafka the ingest consumer fetches on its own; give it a moment to have
            # the same records when the tick reads with timeout 0.
            await asyncio.sleep(self.bell_settle)

    async def _recover(self) -> None:
        """Get a usable connection back and rewind the bus to what is durably ingested.

        A lost connection (PostgreSQL restarted, ``AdminShutdown``) is replaced; a live
        one is rolled back. Either way the subscription is reopened from the group's
        committed offsets: a batch taken from the bus whose transaction failed would
        otherwise be skipped (records already ingested are recognised by their offsets).
        Never raises: if the database is still away, the next tick tries again.
        """
        try:
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                self._conn = None
                self._conn = await self._connect()
            else:
                await conn.rollback()
        except Exception as exc:
            log.debug("engine: database still unavailable: %s", _one_line(exc))
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.close()
        self._sub = None
        self._topics = ()
        self._catalog_at = 0.0  # the next tick re-reads the catalog and resubscribes

    # -- one tick ------------------------------------------------------------------------
    async def run_tick(self) -> list[Emit]:
        """Ingest what is waiting, evaluate every sink, publish; returns what was sent."""
        async with self._lock:
            started = time.perf_counter()
            now = self.now()
            with metrics.ledger() as book:
                if time.monotonic() - self._catalog_at >= self.catalog_refresh:
                    await self._reload_catalog()
                with metrics.stage("ingest"):
                    await self._ingest(now)
                sent = await self._evaluate_sinks(now)
                await self._retention(now)
                if self.ticks % 30 == 29:
                    await self._vacuum()
            self._last_tick = now
            self.ticks += 1
            self.last_tick_at = time.monotonic()
            metrics.LAST_TICK.set(time.time())
            took = time.perf_counter() - started
            metrics.TICK.observe(took)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s", _tick_line(self.ticks, took, book, sent, self.command_topic))
            return sent

    def _require(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("no database connection (Engine.start() first, or reconnecting)")
        return self._conn

    async def _reload_catalog(self) -> None:
        """Re-read sources and sinks (a migration may have added some); resubscribe if the
        set of topics changed. Done every ``catalog_refresh`` wall seconds."""
        self._catalog_at = time.monotonic()
        sources, sinks = await load(self._require())
        self._views = await load_views(self._require())
        self._watermarks = await load_watermarks(self._require())
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

    # -- retention -----------------------------------------------------------------------
    async def _retention(self, now: datetime) -> None:
        """Trim what no view reads any more, once a minute of engine time.

        RisingWave cleans state only where a temporal filter or a watermark reaches it,
        and keeps everything else; so does this. The compiler recorded, per view, how far
        back it reads each relation (``gridctl_engine.reads``): an append-only source or
        a closed-window table loses rows only below what *every* reader still needs, and
        nothing at all while one reader reads all of it. There is no fixed cut-off that a
        long event could outlive; ``retention`` (None by default) is an operator's cap on
        raw rows and then applies on top.
        """
        if self._last_retention and now - self._last_retention < timedelta(minutes=1):
            return
        self._last_retention = now
        conn = self._require()
        needs: dict[str, list[tuple[str | None, int | None, str]]] = {}
        async with conn.cursor() as cur:
            await cur.execute(
                f"SELECT relation, col, seconds, basis FROM {SCHEMA}.reads "
                "WHERE to_regclass(format('%I', view)) IS NOT NULL"
            )
            for relation, col, seconds, basis in await cur.fetchall():
                needs.setdefault(relation, []).append((col, seconds, basis))
        tables: list[tuple[str, str]] = [
            (s.name, f'"{s.name}"')
            for sources in self._sources.values()
            for s in sources
            if s.append_only
        ]
        tables += [
            (v.name, f'{SCHEMA}."{v.name}__closed"') for v in self._views if v.kind == "eowc"
        ]
        for name, table in tables:
            conds, params = self._unneeded(name, needs.get(name, []), now)
            if self.retention is not None and not table.startswith(SCHEMA):
                source = self._source(name)
                if source.watermark_column:
                    conds = [f'"{source.watermark_column}" < %s']
                    params = [now - self.retention]
            if conds:
                await conn.execute(
                    f"DELETE FROM {table} WHERE " + " AND ".join(conds),  # type: ignore[arg-type]
                    params,
                )
        await self._trim_sink_state(now)
        await conn.commit()

    def _unneeded(
        self, name: str, readers: list[tuple[str | None, int | None, str]], now: datetime
    ) -> tuple[list[str], list[Any]]:
        """The condition of rows of ``name`` no reader needs; none if one reads it all."""
        if not readers or any(col is None or seconds is None for col, seconds, _ in readers):
            return [], []
        conds: list[str] = []
        params: list[Any] = []
        for col, seconds, basis in readers:
            assert seconds is not None
            if basis == "watermark":
                mark = self._watermarks.get(name)
                if mark is None:
                    return [], []
                # Windows are appended up to the watermark; keep one more window back.
                conds.append(f'"{col}" < %s')
                params.append(mark - timedelta(seconds=2 * seconds))
            else:
                conds.append(f'"{col}" < %s')
                params.append(now - timedelta(seconds=seconds))
        return conds, params

    async def _trim_sink_state(self, now: datetime) -> None:
        """An append-only sink remembers the keys it emitted so that a row is sent once;
        a key its view no longer holds cannot come back (its inputs were trimmed), so it
        is forgotten an hour after it was emitted."""
        conn = self._require()
        for sink in self._sinks:
            if sink.upsert:
                continue
            key = sink_key_sql(sink)
            await conn.execute(
                f"DELETE FROM {SCHEMA}.sink_state AS s WHERE s.sink = %s AND s.emitted_at < %s "
                f"AND NOT EXISTS (SELECT 1 FROM {sink.relation} AS v WHERE {key} = s.key)",  # type: ignore[arg-type]
                (sink.name, now - timedelta(hours=1)),
            )


def _tick_line(
    number: int, took: float, book: dict[str, float], sent: list[Emit], command_topic: str
) -> str:
    """One tick in one line (DEBUG): where an event's first tick, or the slow one after
    it, spent its time, which the per-stage counters only show summed over all ticks."""
    stages = ", ".join(
        f"{name} {book[name]:.3f}"
        for name in ("ingest", "ingest_bus", "views", "sink_diff", "publish", "outbox")
        if name in book
    )
    commands = sum(1 for e in sent if e.topic == command_topic)
    return (
        f"engine tick {number}: {took:.3f} s ({stages}); {int(book.get('records', 0))} "
        f"records ingested, {len(sent)} sent ({commands} commands)"
    )


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
