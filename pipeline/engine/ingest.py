"""Ingest: bus records into the engine's tables, exactly once (see ``runtime``).

A mixin of :class:`~pipeline.engine.runtime.Engine`, kept apart so each module holds one
job: here records become rows (appended with COPY, upserted by key with the version column
honoured, deleted by tombstones) and the offsets they came from are recorded with them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, Message, Record, Subscription
from pipeline.bus.metrics import OFFSETS_BEYOND_LOG
from pipeline.compiler.bootstrap import SCHEMA
from pipeline.contracts import RejectedRecord, encode
from pipeline.engine import metrics
from pipeline.engine.catalog import Source, load_watermarks
from pipeline.engine.rows import (
    Skip,
    decode_fields,
    has_field,
    is_late,
    newer_version,
    to_row,
)

log = logging.getLogger("pipeline.engine.runtime")

#: Errors a record's own data causes (SQLSTATE classes 22 and 23): the record is refused,
#: not the batch.
_DATA_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)
#: Those classes as dead-letter reasons.
_SQLSTATE_NAMES = {"22": "data_exception", "23": "integrity_violation"}


@dataclass
class _Plan:
    """What a batch writes: rows to append, rows to upsert (None: delete), watermarks."""

    appends: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    upserts: dict[str, dict[tuple[Any, ...], tuple[Any, ...] | None]] = field(default_factory=dict)
    marks: dict[str, datetime] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.appends or self.upserts or self.marks)

    def counts(self, source: Callable[[str], Source]) -> Counter[str]:
        """Rows (appended or upserted) per topic, for the ingest metric."""
        out: Counter[str] = Counter()
        for name, rows in self.appends.items():
            out[source(name).topic] += len(rows)
        for name, by_key in self.upserts.items():
            out[source(name).topic] += len(by_key)
        return out


def _rejection(
    record: Record, table: str | None, reason: str, detail: str, now: datetime
) -> RejectedRecord:
    value = None if record.value is None else record.value.decode("utf-8", "replace")
    return RejectedRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=value,
        table=table,
        reason=reason,
        detail=detail[:2000],
        rejected_ts=now,
    )


class IngestMixin:
    """Ingest half of the engine; the attributes are the Engine's."""

    bus: Bus
    batch_size: int
    max_records_per_tick: int
    _sub: Subscription | None
    _sources: dict[str, list[Source]]
    _offsets: dict[tuple[str, int], int]
    #: each append-only source's watermark (newest event time seen minus the delay), as
    #: RisingWave's watermark filter keeps it; rows below it are dropped at ingest
    _watermarks: dict[str, datetime]
    topic_prefix: str
    _require: Callable[[], psycopg.AsyncConnection[Any]]

    async def _reconcile_offsets(self) -> None:
        """Move stored offsets beyond the end of the bus's log back to its end.

        They are there when the log lost its tail (a disk restored from backup, a log cut
        short): records at the lost offsets never come back, and the new ones the bus
        appends there would be skipped as "already ingested". Warn, count what was lost.
        """
        ends = await self.bus.end_offsets(sorted({t for t, _ in self._offsets}))
        if not ends:
            return
        moved = {}
        for pos, stored in self._offsets.items():
            end = ends.get(pos)
            if end is not None and stored > end:
                moved[pos] = end
                OFFSETS_BEYOND_LOG.labels(pos[0], "engine").inc(stored - end)
                log.warning(
                    "engine: stored offset %d of %s is beyond the end of the bus (%d): "
                    "%d records were lost with the log's tail; ingesting from %d",
                    stored,
                    pos[0],
                    end,
                    stored - end,
                    end,
                )
        if not moved:
            return
        conn = self._require()
        async with conn.cursor() as cur:
            await cur.executemany(
                f"UPDATE {SCHEMA}.offsets SET next_offset = %s WHERE topic = %s AND part = %s",
                [(o, t, p) for (t, p), o in moved.items()],
            )
        await conn.commit()
        self._offsets.update(moved)

    async def _ingest(self, now: datetime) -> None:
        if self._sub is None:
            return
        total = 0
        lag: int | None = None
        lag_read = False
        while total < self.max_records_per_tick:
            # A batch whose write fails raises: the engine's loop then rewinds the
            # subscription to the committed offsets (``Engine._recover``), so it comes again.
            with metrics.stage("ingest_bus"):  # part of "ingest": reading the bus
                batch = await self._sub.batch(max_records=self.batch_size, timeout=0)
            if not batch:
                break
            total += len(batch)
            await self._write_batch(batch, now)
            last = len(batch) < self.batch_size or total >= self.max_records_per_tick
            with metrics.stage("ingest_bus"):
                # The last commit of a tick and the lag in one call: from the engine's
                # thread each call is a hop onto the bus's (busy) loop.
                if last:
                    lag, lag_read = await self._sub.commit_and_lag(), True
                else:
                    await self._sub.commit()
            if last:
                break
        if not lag_read:
            with metrics.stage("ingest_bus"):
                lag = await self._sub.lag()
        if lag is None:  # transport cannot tell: at least a full batch is waiting, or none
            lag = self.batch_size if total >= self.max_records_per_tick else 0
        metrics.LAG.set(lag)
        metrics.tally("records", total)

    async def _write_batch(self, batch: Sequence[Record], now: datetime) -> None:
        """Write a batch and its offsets in one transaction; bad records to dead letters.

        The whole batch goes in one statement per table. Should the database refuse it (a
        value out of a column's range), the batch is written again record by record, each
        under a savepoint, and the records it refuses become dead letters. Dead letters
        are durable on the bus before the offsets past them are committed, so a crash in
        between publishes them again rather than losing them.
        """
        conn = self._require()
        fresh: list[Record] = []
        offsets: dict[tuple[str, int], int] = {}
        for record in batch:
            pos = (record.topic, record.partition)
            if record.offset < self._offsets.get(pos, 0):
                continue  # ingested before a crash, redelivered by the bus
            offsets[pos] = max(offsets.get(pos, 0), record.offset + 1)
            fresh.append(record)
        rejected: list[RejectedRecord] = []
        plan = self._plan(fresh, now, rejected)
        try:
            async with conn.cursor() as cur:
                await self._apply(cur, plan)
        except _DATA_ERRORS:
            # Some row's data (anything else, a connection or a schema mid-migration, is
            # raised: the batch is retried whole next tick, never dead-lettered).
            await conn.rollback()
            rejected, written = await self._write_one_by_one(fresh, now)
            one_by_one = True
        else:
            written = plan.counts(self._source)
            one_by_one = False
        async with conn.cursor() as cur:
            if offsets:
                await cur.executemany(
                    f"INSERT INTO {SCHEMA}.offsets (topic, part, next_offset) VALUES (%s, %s, %s) "
                    "ON CONFLICT (topic, part) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                    [(t, p, o) for (t, p), o in offsets.items()],
                )
        if rejected:
            await self._dead_letter(rejected)
        await conn.commit()
        self._offsets.update(offsets)
        if one_by_one:
            self._watermarks = await load_watermarks(conn)  # what the written rows moved
        else:
            for name, mark in plan.marks.items():
                delay = self._source(name).watermark_delay or timedelta(0)
                old = self._watermarks.get(name)
                self._watermarks[name] = mark - delay if old is None else max(old, mark - delay)
        for topic, count in written.items():
            metrics.INGESTED.labels(topic).inc(count)

    async def _write_one_by_one(
        self, records: Sequence[Record], now: datetime
    ) -> tuple[list[RejectedRecord], Counter[str]]:
        """Write each record under a savepoint: ``(refused records, rows written per topic)``."""
        conn = self._require()
        rejected: list[RejectedRecord] = []
        written: Counter[str] = Counter()
        async with conn.cursor() as cur:
            for record in records:
                plan = self._plan([record], now, rejected)
                if plan.empty:
                    continue
                await cur.execute("SAVEPOINT ingest_record")
                try:
                    await self._apply(cur, plan)
                except _DATA_ERRORS as exc:
                    await cur.execute("ROLLBACK TO SAVEPOINT ingest_record")
                    reason = exc.diag.sqlstate or "database"
                    reason = _SQLSTATE_NAMES.get(reason[:2], reason)
                    rejected.append(_rejection(record, None, reason, str(exc).strip(), now))
                    continue
                await cur.execute("RELEASE SAVEPOINT ingest_record")
                written.update(plan.counts(self._source))
        return rejected, written

    async def _dead_letter(self, rejected: list[RejectedRecord]) -> None:
        messages = [
            Message(
                self.topic_prefix + topic_names.INGEST_REJECTED,
                f"{r.topic}:{r.partition}:{r.offset}",
                encode(r),
            )
            for r in rejected
        ]
        await self.bus.publish_many(messages)
        for r in rejected:
            metrics.REJECTED.labels(r.topic, r.reason).inc()
            log.warning(
                "engine: %s@%d rejected (%s), sent to %s: %s",
                r.topic,
                r.offset,
                r.reason,
                self.topic_prefix + topic_names.INGEST_REJECTED,
                r.detail,
            )

    def _plan(
        self, records: Sequence[Record], now: datetime, rejected: list[RejectedRecord]
    ) -> _Plan:
        """Rows, keys and watermarks of ``records``; records that cannot be rows are
        added to ``rejected``."""
        plan = _Plan()
        for record in records:
            for source in self._sources.get(record.topic, ()):
                try:
                    self._route(source, record, plan.appends, plan.upserts, plan.marks, now)
                except Skip as exc:
                    rejected.append(_rejection(record, source.name, exc.reason, str(exc), now))
        return plan

    async def _apply(self, cur: psycopg.AsyncCursor[Any], plan: _Plan) -> None:
        for name, rows in plan.appends.items():
            source = self._source(name)
            cols = ", ".join(f'"{c}"' for c in source.column_names)
            async with cur.copy(f'COPY "{name}" ({cols}) FROM STDIN') as copy:
                for row in rows:
                    await copy.write_row(row)
        for name, by_key in plan.upserts.items():
            await self._upsert(cur, self._source(name), by_key)
        for name, mark in plan.marks.items():
            await cur.execute(
                f"UPDATE {SCHEMA}.sources SET watermark_ts = GREATEST("
                "COALESCE(watermark_ts, '-infinity'::TIMESTAMPTZ), "
                "%s::TIMESTAMPTZ - COALESCE(watermark_delay, INTERVAL '0 SECONDS')) "
                "WHERE name = %s",
                (mark, name),
            )

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
            if source.append_only and is_late(ts, self._watermarks.get(source.name)):
                # RisingWave's watermark filter drops it before any view sees it: emulate.
                raise Skip("late", f"{source.watermark_column} {ts} is below the watermark")
            if isinstance(ts, datetime):
                if source.name not in marks or ts > marks[source.name]:
                    marks[source.name] = ts
                if record.topic.endswith(topic_names.METER_VALUES):
                    metrics.METER_AGE.observe(max(0.0, (now - ts).total_seconds()))
        if source.append_only:
            appends.setdefault(source.name, []).append(row)
            return
        names = source.column_names
        if source.version_column and not has_field(record.value, source.version_column):
            # The contract defaults a missing version; RisingWave reads it as NULL (lowest).
            vi = names.index(source.version_column)
            row = (*row[:vi], None, *row[vi + 1 :])
        key = tuple(row[names.index(c)] for c in source.primary_key)
        if any(k is None for k in key):
            raise Skip("no_key", f"primary key {source.primary_key} is null")
        pending = upserts.setdefault(source.name, {})
        if source.keep_first and pending.get(key) is not None:
            return  # the first row per key wins (ON CONFLICT DO NOTHING)
        if source.version_column and pending.get(key) is not None:
            vi = names.index(source.version_column)
            old = pending[key]
            if old is not None and not newer_version(old[vi], row[vi]):
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
            # RisingWave: NULL versions sort first; an equal version overwrites.
            old_v, new_v = f'"{source.name}"."{v}"', f'EXCLUDED."{v}"'
            sql += f" WHERE {old_v} IS NULL OR ({new_v} IS NOT NULL AND {new_v} >= {old_v})"
        rows = [r for r in by_key.values() if r is not None]
        deletes = [k for k, r in by_key.items() if r is None]
        if deletes:
            cond = " AND ".join(f'"{c}" = %s' for c in source.primary_key)
            await cur.executemany(f'DELETE FROM "{source.name}" WHERE {cond}', deletes)
        if rows:
            await cur.executemany(sql, rows)
