"""Sinks: materialise views, diff each sink against its emitted state, publish via outbox.

A mixin of :class:`~pipeline.engine.runtime.Engine` (the delivery argument is in the
``runtime`` docstring).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from pipeline.bus.base import Bus, Message
from pipeline.compiler.bootstrap import SCHEMA
from pipeline.engine import metrics
from pipeline.engine.catalog import Sink, Source, View
from pipeline.engine.rows import Emit, sink_query

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
    _require: Callable[[], psycopg.AsyncConnection[Any]]

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
