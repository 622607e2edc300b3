"""Ingest: bus records into the engine's tables, exactly once (see ``runtime``).

A mixin of :class:`~pipeline.engine.runtime.Engine`, kept apart so each module holds one
job: here records become rows (appended with COPY, upserted by key with the version column
honoured, deleted by tombstones) and the offsets they came from are recorded with them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, Record, Subscription
from pipeline.compiler.bootstrap import SCHEMA
from pipeline.engine import metrics
from pipeline.engine.catalog import Source
from pipeline.engine.rows import Skip, decode_fields, to_row

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pipeline.engine.runtime")


class IngestMixin:
    """Ingest half of the engine; the attributes are the Engine's."""

    bus: Bus
    batch_size: int
    max_records_per_tick: int
    _sub: Subscription | None
    _sources: dict[str, list[Source]]
    _offsets: dict[tuple[str, int], int]
    _require: Callable[[], psycopg.AsyncConnection[Any]]

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
        lag = await self._sub.lag()
        if lag is None:  # transport cannot tell: at least a full batch is waiting, or none
            lag = self.batch_size if total >= self.max_records_per_tick else 0
        metrics.LAG.set(lag)

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
        if record.timestamp_ms:
            metrics.INGEST_LATENCY.observe(max(0.0, time.time() - record.timestamp_ms / 1000))
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
        if source.keep_first and pending.get(key) is not None:
            return  # the first row per key wins (ON CONFLICT DO NOTHING)
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
            f"ON CONFLICT ({pk}) DO "
            + (f"UPDATE SET {updates}" if updates and not source.keep_first else "NOTHING")
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
