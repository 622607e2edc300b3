"""Sinks: materialise views, diff each sink against its emitted state, publish via outbox.

Per tick the cost is the views' (see ``bench/engine_tick.py --profile`` and
docs/engines.md, "What a tick costs"); applying the changes is set-based (one statement
per sink updates the emitted state and fills the outbox) and publishing one batch.

A mixin of :class:`~pipeline.engine.runtime.Engine` (the delivery argument is in the
``runtime`` docstring).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from pipeline.bus.base import Bus, Message
from pipeline.compiler.bootstrap import SCHEMA
from pipeline.engine import metrics
from pipeline.engine.catalog import Sink, Source, View
from pipeline.engine.rows import Emit, sink_apply_sql

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pipeline.engine.runtime")


class SinkMixin:
    """Sink half of the engine; the attributes are the Engine's."""

    bus: Bus
    _clock: Callable[[], datetime] | None
    _sinks: list[Sink]
    _views: list[View]
    _sources: dict[str, list[Source]]
    _outbox_dirty: bool
    #: the deployment's command topic (``${topic_prefix}`` included): its sink goes first
    command_topic: str
    #: when a list, each statement of a tick is run alone and its (SQL, seconds) appended
    statement_times: list[tuple[str, float]] | None
    _require: Callable[[], psycopg.AsyncConnection[Any]]

    async def _evaluate_sinks(self, now: datetime) -> list[Emit]:
        """Materialise the views, then apply and publish the command sink before the rest.

        A charger's limit is what a DR event waits for: at 10,000 stations the first tick
        of an event also emits 10,000 frozen baselines and the alerts, and applying and
        publishing those first put the first SetChargingProfile ~1 s later
        (``bench/dr_latency.py``). So when the command sink changed anything, its changes
        are committed and published on their own, and the other sinks follow in a second
        transaction over the same caches (same clock, same ingested rows). A crash in
        between loses nothing: the second transaction's sinks are diffed again by the next
        tick against the emitted state they left unchanged.
        """
        conn = self._require()
        first = [s for s in self._sinks if s.topic == self.command_topic]
        rest = [s for s in self._sinks if s.topic != self.command_topic]
        sent: list[Emit] = []
        # Tuple rows: a dict per outbox row was the engine thread's largest Python cost
        # while an event's 20,000 records were fetched (py-spy --gil, bench/dr_latency.py).
        async with conn.cursor() as cur:
            with metrics.stage("views"):
                await self._materialise(cur, now)
            applied = await self._apply_or_isolate(cur, now, first)
            if rest and any(rows for _, rows in applied):
                with metrics.stage("sink_diff"):
                    await conn.commit()
                sent += await self._send(applied)
                applied = []
            applied += await self._apply_or_isolate(cur, now, rest)
            with metrics.stage("sink_diff"):
                await conn.commit()
        return sent + await self._send(applied)

    async def _apply_or_isolate(
        self, cur: psycopg.AsyncCursor[Any], now: datetime, sinks: list[Sink]
    ) -> list[tuple[Sink, list[tuple[Any, ...]]]]:
        """Apply ``sinks`` in the tick's transaction; if one fails, roll back and apply them
        one by one, each in a savepoint, so a broken view stops only its own sink."""
        if not sinks:
            return []
        try:
            with metrics.stage("sink_diff"):
                return await self._apply_sinks(cur, now, sinks, savepoints=False)
        except psycopg.Error:
            # A view is missing or broken (e.g. mid-rebuild): apply sink by sink.
            await self._require().rollback()
            await self._materialise(cur, now)
            return await self._apply_sinks(cur, now, sinks, savepoints=True)

    async def _send(self, applied: list[tuple[Sink, list[tuple[Any, ...]]]]) -> list[Emit]:
        """Publish what one committed transaction wrote to the outbox, in ``seq`` order."""
        pending: list[tuple[int, Emit]] = []
        for sink, rows in applied:
            if rows:
                metrics.SINK_RECORDS.labels(sink.name).inc(len(rows))
            pending += [(seq, Emit(sink.topic, key, value)) for seq, key, value in rows]
        pending.sort(key=lambda p: p[0])
        if self._outbox_dirty:
            await self._flush_outbox()  # older records first; they include these
        elif pending:
            await self._publish(pending)
        return [e for _, e in pending]

    async def _materialise(self, cur: psycopg.AsyncCursor[Any], now: datetime) -> None:
        """Set the clock and bring materialised views up to date, in dependency order,
        inside the tick's transaction: EOWC views get the windows closed since the last
        tick appended (their scans start at the window holding the previous watermark;
        a tick in which no window ended appends nothing and is skipped), cached views
        store their result once and the views above read that (``name__eval`` reads the
        ``__tick`` relations below it) instead of recomputing it. The statements go in one
        pipeline: one round trip, not dozens."""
        marks: dict[str, tuple[datetime | None, datetime | None]] = {}
        if any(v.kind == "eowc" for v in self._views):
            await cur.execute(
                f"SELECT name, emitted_until, {SCHEMA}.watermark(VARIADIC CASE "
                "WHEN cardinality(sources) = 0 THEN ARRAY['']::TEXT[] ELSE sources END) AS mark "
                f"FROM {SCHEMA}.views WHERE kind = 'eowc'"
            )
            marks = {name: (done, mark) for name, done, mark in await cur.fetchall()}
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (f"UPDATE {SCHEMA}.clock SET ts = %s WHERE id", (None if self._clock is None else now,))
        ]
        # The views this tick refreshes read their caches from now on (compiler: a
        # maintained view is its cache); written only when the set changed.
        kept = [v.name for v in self._views if v.kind != "eowc"]
        statements.append(
            (
                f"UPDATE {SCHEMA}.views SET maintained = (name = ANY(%s)) "
                "WHERE maintained IS DISTINCT FROM (name = ANY(%s))",
                (kept, kept),
            )
        )
        cached: list[str] = []
        # Views compiled before name__eval existed read the caches below them only when
        # gridctl.cached lists those (their public view chooses cache or query).
        legacy = any(v.kind != "eowc" and v.evaluate is None for v in self._views)
        for view in self._views:
            if view.kind == "eowc":
                done, mark = marks.get(view.name, (None, None))
                if mark is None or (done is not None and mark <= done):
                    continue
                if done is not None and not _window_ends_between(done, mark, view.window_step):
                    # No window ended in (done, mark]: nothing closed. The scan would still
                    # aggregate the open window's rows (a minute of samples) for nothing.
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
                statements += [(sql, ()) for sql in view.refresh_sql.split(";\n")]
            else:
                query = view.evaluate or f'{SCHEMA}."{view.name}__live"'
                statements += [
                    # DELETE, not TRUNCATE: TRUNCATE takes an exclusive lock (dashboards
                    # reading the cache would queue behind the tick) and a new file.
                    (f'DELETE FROM {SCHEMA}."{view.name}__cache"', ()),
                    (f'INSERT INTO {SCHEMA}."{view.name}__cache" SELECT * FROM {query}', ()),
                ]
            if legacy and view.kind != "eowc":
                cached.append(view.name)
                statements.append(
                    (
                        "SELECT set_config('gridctl.cached', %s, true)",
                        ("," + ",".join(cached) + ",",),
                    )
                )
        if self.statement_times is not None:
            # Profiling (bench/engine_profile.py): one statement at a time, each timed.
            for sql, params in statements:
                began = time.perf_counter()
                await cur.execute(sql, params or None)  # type: ignore[arg-type]
                self.statement_times.append((sql, time.perf_counter() - began))
            return
        async with self._require().pipeline():
            for sql, params in statements:
                await cur.execute(sql, params or None)  # type: ignore[arg-type]

    def _append_only(self, view: View) -> bool:
        """An incremental top-1 is exact only over one append-only source table."""
        names = {s.name: s for sources in self._sources.values() for s in sources}
        return len(view.sources) == 1 and (
            view.sources[0] in names and names[view.sources[0]].append_only
        )

    async def _apply_sinks(
        self,
        cur: psycopg.AsyncCursor[Any],
        now: datetime,
        sinks: list[Sink],
        *,
        savepoints: bool,
    ) -> list[tuple[Sink, list[tuple[Any, ...]]]]:
        """Apply each sink's changes to its emitted state and the outbox (UPSERT sinks
        first, then by name); the outbox rows written, per sink."""
        conn = self._require()
        out: list[tuple[Sink, list[tuple[Any, ...]]]] = []
        for sink in sorted(sinks, key=lambda s: (not s.upsert, s.name)):
            try:
                async with conn.transaction() if savepoints else contextlib.nullcontext():
                    began = time.perf_counter()
                    await cur.execute(
                        sink_apply_sql(sink),  # type: ignore[arg-type]
                        {"sink": sink.name, "topic": sink.topic, "now": now},
                    )
                    out.append((sink, await cur.fetchall()))
                    if self.statement_times is not None:
                        self.statement_times.append(
                            (f"sink {sink.name}", time.perf_counter() - began)
                        )
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
            rows = await cur.fetchall()
        await conn.commit()
        if not rows:
            self._outbox_dirty = False
            return
        await self._publish([(seq, Emit(t, k, v)) for seq, t, k, v in rows])

    async def _publish(self, pending: list[tuple[int, Emit]]) -> None:
        """Publish outbox records (``seq`` order) in one batch; then delete them.

        The tick that wrote them publishes them straight from what its statement
        returned; a leftover outbox (a failed publish, a crash) is read back first."""
        # Until the bus acknowledged, every tick retries (even one that decides nothing).
        self._outbox_dirty = True
        with metrics.stage("publish"):
            await self.bus.publish_many(
                [
                    Message(e.topic, e.key, None if e.value is None else e.value.encode())
                    for _, e in pending
                ]
            )
        conn = self._require()
        with metrics.stage("outbox"):
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


_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # bootstrap.WINDOW_ORIGIN


def _window_ends_between(after: datetime, upto: datetime, step: int | None) -> bool:
    """Whether a window end (``_ORIGIN`` + k * ``step`` seconds) lies in ``(after, upto]``;
    True when the step is unknown (compiled before it was recorded)."""
    if not step:
        return True
    unit = timedelta(seconds=step)
    return (upto - _ORIGIN) // unit > (after - _ORIGIN) // unit
