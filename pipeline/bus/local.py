"""The in-process bus: the same promises as Kafka, inside one process.

Used on one machine (``gridctl run`` on an edge box, tests, replay). With a ``path`` it
keeps a write-ahead log on disk: ``publish`` resolves after the record is written and
fsynced (group commit on a thread of its own, :mod:`pipeline.bus.group_commit`: one
fsync covers every record that arrived meanwhile), so a reading the gateway acknowledged
survives a crash, and a restart on the same directory sees every topic as it was. Readers
see a record once it is durable, in the order of the file. Without a path it is
memory-only.

A live reader gets every record, as on Kafka. Upsert topics are also compacted in memory: a
subscriber that starts later, from the beginning, gets the latest value per key; every topic
keeps its last ``retention_records`` records in full. The log directory is 0700 and its
files 0600: ``config.station_credentials`` carries the stations' password hashes.

Any thread's event loop may publish, read and commit: the engine, on its own thread and
loop (``gridctl run``), does so directly instead of waiting for turns of the gateway's
loop, which at 5,000 chargers cost 0.8 s per read and 1.4 s per publish
(``bench/dr_latency.py``, ``ingest_bus`` and ``publish``). One lock guards the logs,
another the group offsets; both are held for in-memory work only (an append, a slice of
the tail), never across an ``await`` or the fsync. A reader waiting for records is woken
on its own loop, from whichever thread appended.

On start the log is recovered (:mod:`pipeline.bus.wal`: a torn tail is cut, with a
warning), and a group whose committed offset lies beyond the end of the log (its tail was
lost) is moved back to the end, with a warning and
``gridctl_bus_offsets_beyond_log_records_total`` counting the records lost: new records
are read, never silently skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from pathlib import Path

from pipeline import topics as topic_names
from pipeline.bus import wal
from pipeline.bus.base import (
    Bus,
    BusClosed,
    BusError,
    Message,
    PublishError,
    Record,
    Subscription,
)
from pipeline.bus.group_commit import GroupCommit
from pipeline.bus.metrics import OFFSETS_BEYOND_LOG

log = logging.getLogger("pipeline.bus")


class _Wake:
    """Wakes one waiting :meth:`_LocalSubscription.batch` on its own loop and thread."""

    __slots__ = ("event", "fired", "loop", "thread")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.event = asyncio.Event()
        self.fired = False

    def fire(self) -> None:
        if self.fired:  # one wake is enough: the reader takes everything there is
            return
        self.fired = True
        if threading.get_ident() == self.thread:
            self.event.set()
        else:
            self.loop.call_soon_threadsafe(self.event.set)


class _Log:
    """One topic's records with Kafka-like offsets.

    ``tail`` holds every record of the last ``retention`` offsets, so a live reader sees
    each one, as on Kafka (which never compacts the active segment): two revisions of one
    key published within one tick both arrive, in order. Upsert topics also keep the latest
    record per key, which is what a reader that starts later (or fell behind the tail)
    gets for the offsets before the tail.
    """

    def __init__(self, topic: str, retention: int) -> None:
        self.topic = topic
        self.upsert = topic_names.is_upsert(topic)
        self.next_offset = 0
        self.tail: deque[Record] = deque(maxlen=retention)
        self.latest: OrderedDict[str | None, Record] = OrderedDict()
        #: readers waiting for the next record (see :class:`_Wake`)
        self.waiters: list[_Wake] = []

    def append(self, key: str | None, value: bytes | None, ts_ms: int) -> Record:
        record = Record(self.topic, key, value, self.next_offset, ts_ms)
        self.next_offset += 1
        self.tail.append(record)
        if self.upsert:
            self.latest.pop(key, None)
            self.latest[key] = record
        return record

    def wake(self) -> None:
        """Tell the readers waiting for this topic that records arrived (once per batch:
        from the group commit's thread each wake is a callback on the reader's loop)."""
        for waiter in self.waiters:
            waiter.fire()

    @property
    def start(self) -> int:
        """The first offset still in the tail."""
        return self.tail[0].offset if self.tail else self.next_offset

    def read(self, offset: int, limit: int) -> list[Record]:
        """Up to ``limit`` records from ``offset`` on (``offset >= start``), every one."""
        first = offset - self.start
        return [self.tail[i] for i in range(first, min(len(self.tail), first + limit))]

    def compacted(self, offset: int, before: int) -> deque[Record]:
        """The latest record of each key whose offset is in ``[offset, before)``."""
        return deque(r for r in self.latest.values() if offset <= r.offset < before)


class LocalBus(Bus):
    """In-process bus; ``path`` makes it durable across restarts."""

    thread_safe = True

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        retention_records: int = 200_000,
        max_in_flight: int = 10_000,
        publish_timeout: float = 5.0,
    ) -> None:
        self._path = Path(path) if path else None
        self.keeps_offsets = self._path is not None
        self._retention = retention_records
        self._logs: dict[str, _Log] = {}
        self._groups: dict[str, dict[str, int]] = {}
        #: the logs (appends, reads, lazily created topics); re-entrant: reads take it
        #: around helpers that take it too
        self._lock = threading.RLock()
        #: the group offsets and groups.json (a commit from the engine's thread, another
        #: group's from the bus's loop)
        self._groups_lock = threading.Lock()
        self._max_in_flight = max_in_flight
        self._in_flight = 0  # publishes waiting for the log now
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._timeout = publish_timeout
        #: the loop that started the bus (back-pressure applies to its publishes)
        self._owner: asyncio.AbstractEventLoop | None = None
        # fsync runs on a thread of its own: in the shared default executor it would queue
        # behind whatever else uses it (scrypt checks of a reconnect storm, the ocpp
        # library's schema validation) and acknowledgements would time out under load.
        self._group_commit: GroupCommit | None = None
        self._file: object | None = None
        self._running = False

    @property
    def wal_path(self) -> Path | None:
        """The log file, when the bus keeps one."""
        return None if self._path is None else self._path / "bus.log"

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._owner = asyncio.get_running_loop()
        for topic in topic_names.ALL_TOPICS:
            self._log(topic)
        if self._path is not None:
            self._open_dir()
            self._load()
            wal_path = self._path / "bus.log"
            try:
                fd = os.open(wal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.fchmod(fd, 0o600)
                self._file = os.fdopen(fd, "ab")
            except OSError as exc:
                raise wal.WalError(f"bus log {wal_path}: {exc.strerror or exc}") from exc
            self._group_commit = GroupCommit(
                # looked up per write: fault injection (tests' StalledLog) replaces it
                lambda data: self._append_sync(data),
                self._append_durable,
            )
            self._group_commit.start()
        self._running = True

    def _open_dir(self) -> None:
        assert self._path is not None
        try:
            self._path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self._path.stat().st_uid == os.geteuid():
                self._path.chmod(0o700)
        except OSError as exc:
            raise wal.WalError(f"bus directory {self._path}: {exc.strerror or exc}") from exc

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._group_commit is not None:
            await self._group_commit.stop()
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            with self._groups_lock:
                self._save_groups()
        with self._lock:
            for log_ in self._logs.values():
                log_.wake()

    async def ping(self, timeout: float = 2.0) -> str:
        if not self._running:
            raise BusError("in-process bus is stopped")
        if self._group_commit is not None and not self._group_commit.alive:
            raise BusError("the write-ahead log writer has stopped")
        return "in-process" + (f", log in {self._path}" if self._path else ", memory only")

    # -- publish -----------------------------------------------------------------------
    async def publish(self, topic: str, key: str | None, value: bytes | None) -> None:
        await self.publish_many([Message(topic, key, value)])

    async def publish_many(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> None:
        """Append ``messages``; on the log, return once written and fsynced.

        Any thread's loop may publish (the engine's does). No timer per call: the group
        commit (:mod:`pipeline.bus.group_commit`) keeps one deadline per loop and fails
        every publish past its own (``publish_timeout``, or ``timeout`` when shorter) with
        :class:`PublishError`, even while the disk stalls. Readers see the records once
        they are durable, in the order of the file.
        """
        if not self._running:
            raise PublishError("bus is stopped")
        limit = self._timeout if timeout is None or timeout > self._timeout else timeout
        now = int(time.time() * 1000)
        commit = self._group_commit
        if commit is None:  # memory only: nothing to wait for
            self._append_durable([(messages, now)])
            return
        lines = b"".join(wal.encode(m, now) for m in messages)
        loop = asyncio.get_running_loop()
        if loop is not self._owner:
            # Not counted against max_in_flight, which bounds the gateway's readings on
            # the bus's loop; the engine publishes one batch per tick.
            await commit.write(lines, (messages, now), limit)
            return
        deadline = loop.time() + limit
        if self._in_flight >= self._max_in_flight:
            await self._slot(deadline, limit)
        self._in_flight += 1
        try:
            await commit.write(lines, (messages, now), limit, deadline)
        finally:
            self._in_flight -= 1
            if self._slot_waiters:
                self._wake_slot_waiter()

    def _append_durable(self, batches: list[tuple[Sequence[Message], int]]) -> None:
        """Append durable batches to the logs, in the order of the file (on the group
        commit's thread), so offsets after a restart name the same records; the lines
        of a publish that gave up meanwhile are in the file too, and so are appended."""
        with self._lock:
            touched: dict[str, _Log] = {}
            for messages, ts_ms in batches:
                for m in messages:
                    log_ = touched.get(m.topic)
                    if log_ is None:
                        log_ = touched[m.topic] = self._log(m.topic)
                    log_.append(m.key, m.value, ts_ms)
            for log_ in touched.values():
                log_.wake()

    async def _slot(self, deadline: float, limit: float) -> None:
        """Wait for a free in-flight slot (back-pressure), within the same deadline."""
        while self._in_flight >= self._max_in_flight:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slot_waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_slot_waiter()  # woken as it gave up: pass the turn on
                if isinstance(sys.exc_info()[1], TimeoutError):
                    raise PublishError(f"no in-flight slot within {limit:g} s") from None
                raise

    def _wake_slot_waiter(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _append_sync(self, data: bytes) -> None:
        f = self._file
        f.write(data)  # type: ignore[attr-defined]
        f.flush()  # type: ignore[attr-defined]
        os.fsync(f.fileno())  # type: ignore[attr-defined]

    # -- subscribe ---------------------------------------------------------------------
    def subscribe(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        from_beginning: bool = True,
    ) -> Subscription:
        committed = self._groups.setdefault(group, {}) if group else {}
        sub = _LocalSubscription(self, list(topics), committed if group else None)
        for t in topics:
            log_ = self._log(t)
            if t in committed:
                sub.seek(t, committed[t])
            elif from_beginning:
                sub.seek(t, 0, compacted=log_.upsert)
            else:
                sub.seek(t, log_.next_offset)
        return sub

    def _reconcile(self) -> None:
        """Move committed offsets beyond the end of the log back to its end, on start."""
        for group, offsets in self._groups.items():
            for topic, offset in offsets.items():
                log_ = self._log(topic)
                if offset > log_.next_offset:
                    self._warn_beyond(group, topic, offset, log_)
                    offsets[topic] = log_.next_offset

    def _warn_beyond(self, group: str, topic: str, offset: int, log_: _Log) -> None:
        lost = offset - log_.next_offset
        OFFSETS_BEYOND_LOG.labels(topic, group).inc(lost)
        log.warning(
            "bus log %s: group %r had committed %s up to offset %d, beyond the end of the "
            "log (%d): %d records were lost with the log's tail; reading from %d",
            self.wal_path,
            group,
            topic,
            offset,
            log_.next_offset,
            lost,
            log_.next_offset,
        )

    async def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        with self._lock:
            return {(t, 0): self._log(t).next_offset for t in topics}

    def _log(self, topic: str) -> _Log:
        log_ = self._logs.get(topic)
        if log_ is None:
            with self._lock:
                log_ = self._logs.get(topic)
                if log_ is None:
                    log_ = self._logs[topic] = _Log(topic, self._retention)
        return log_

    def _commit(self, group_offsets: dict[str, int], positions: dict[str, int]) -> None:
        with self._groups_lock:
            group_offsets.update(positions)
            if self._path is not None:
                self._save_groups()

    # -- persistence -------------------------------------------------------------------
    def _load(self) -> None:
        assert self._path is not None
        with self._lock:
            for entry in wal.recover(self._path / "bus.log"):
                self._log(entry.topic).append(entry.key, entry.value, entry.ts_ms)
        groups = self._path / "groups.json"
        try:
            data = json.loads(groups.read_text()) if groups.exists() else {}
            if not all(
                isinstance(o, dict) and all(isinstance(v, int) for v in o.values())
                for o in data.values()
            ):
                raise ValueError("not a map of group -> topic -> offset")
            self._groups = data
        except (OSError, ValueError, AttributeError) as exc:
            # Offsets only: readers start over from the beginning (at-least-once), the
            # engine skips what it already has by its own offsets.
            log.warning("bus offsets %s unreadable (%s); groups start over", groups, exc)
            self._groups = {}
        self._reconcile()

    def _save_groups(self) -> None:
        assert self._path is not None
        tmp = self._path / "groups.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self._groups))
        tmp.replace(self._path / "groups.json")


class _LocalSubscription(Subscription):
    """One reader's positions; used from one loop at a time (any thread's)."""

    thread_safe = True

    def __init__(
        self, bus: LocalBus, topics: list[str], group_offsets: dict[str, int] | None
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._positions: dict[str, int] = {}
        #: per topic, the compacted records still to deliver before ``_backlog_end``
        self._backlog: dict[str, deque[Record]] = {}
        self._backlog_end: dict[str, int] = {}
        self._group_offsets = group_offsets
        self._closed = False

    def seek(self, topic: str, offset: int, *, compacted: bool = False) -> None:
        """Read ``topic`` from ``offset``; ``compacted``: only the latest record per key
        of what is already in the log."""
        with self._bus._lock:
            self._positions[topic] = offset
            self._backlog.pop(topic, None)
            if compacted:
                log_ = self._bus._log(topic)
                self._fill_backlog(topic, log_, log_.next_offset)

    def _fill_backlog(self, topic: str, log_: _Log, before: int) -> None:
        self._backlog[topic] = log_.compacted(self._positions[topic], before)
        self._backlog_end[topic] = before

    async def batch(self, max_records: int = 500, timeout: float = 0.1) -> list[Record]:
        if self._closed:
            raise BusClosed("subscription closed")
        out = self._take(max_records)
        if out or timeout <= 0:
            return out
        wake = _Wake()
        logs = [self._bus._log(t) for t in self._topics]
        with self._bus._lock:
            for log_ in logs:
                log_.waiters.append(wake)
        try:
            # Records appended between the first look and the registration woke nobody.
            out = self._take(max_records)
            if out:
                return out
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.event.wait()
        finally:
            with self._bus._lock:
                for log_ in logs:
                    log_.waiters.remove(wake)
        return self._take(max_records)

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        with self._bus._lock:
            for t in self._topics:
                if len(out) < max_records:
                    out.extend(self._take_topic(t, max_records - len(out)))
        return out

    def _take_topic(self, topic: str, limit: int) -> list[Record]:
        log_ = self._bus._log(topic)
        out: list[Record] = []
        if topic not in self._backlog and self._positions[topic] < log_.start:
            if log_.upsert:  # fell behind the tail: the latest per key of what it missed
                self._fill_backlog(topic, log_, log_.start)
            else:  # gone with retention, as on Kafka
                self._positions[topic] = log_.start
        backlog = self._backlog.get(topic)
        if backlog is not None:
            while backlog and len(out) < limit:
                record = backlog.popleft()
                out.append(record)
                self._positions[topic] = record.offset + 1
            if backlog:
                return out
            del self._backlog[topic]
            self._positions[topic] = max(self._positions[topic], self._backlog_end[topic])
            if self._positions[topic] < log_.start:
                return out  # the tail moved on meanwhile; the next call catches up
        records = log_.read(self._positions[topic], limit - len(out))
        if records:
            self._positions[topic] = records[-1].offset + 1
            out.extend(records)
        return out

    async def commit(self) -> None:
        if self._group_offsets is not None:
            self._bus._commit(self._group_offsets, dict(self._positions))

    async def lag(self) -> int | None:
        total = 0
        with self._bus._lock:
            for t in self._topics:
                end = self._bus._log(t).next_offset
                if t in self._backlog:
                    total += len(self._backlog[t]) + max(0, end - self._backlog_end[t])
                else:
                    total += max(0, end - self._positions[t])
        return total

    async def close(self) -> None:
        self._closed = True
