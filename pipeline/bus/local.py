"""The in-process bus: the same promises as Kafka, inside one asyncio loop.

Used on one machine (``gridctl run`` on an edge box, tests, replay). With a ``path`` it
keeps a write-ahead log on disk: ``publish`` resolves after the record is written and
fsynced (group commit: one fsync covers every record that arrived meanwhile), so a
reading the gateway acknowledged survives a crash, and a restart on the same directory
sees every topic as it was. Without a path it is memory-only.

Upsert topics are compacted in memory: a new subscriber reading from the beginning gets
the latest value per key; append-only topics keep the last ``retention_records`` records.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline import topics as topic_names
from pipeline.bus.base import Bus, BusClosed, Message, PublishError, Record, Subscription


class _Log:
    """One topic's records with Kafka-like offsets."""

    def __init__(self, topic: str, retention: int) -> None:
        self.topic = topic
        self.upsert = topic_names.is_upsert(topic)
        self.next_offset = 0
        # Append-only topics: a bounded deque; upsert topics: latest record per key.
        self.records: deque[Record] = deque(maxlen=retention)
        self.latest: OrderedDict[str | None, Record] = OrderedDict()
        self.changed = asyncio.Event()

    def append(self, key: str | None, value: bytes | None, ts_ms: int) -> Record:
        record = Record(self.topic, key, value, self.next_offset, ts_ms)
        self.next_offset += 1
        if self.upsert:
            self.latest.pop(key, None)
            self.latest[key] = record
        else:
            self.records.append(record)
        self.changed.set()
        self.changed = asyncio.Event()
        return record

    def after(self, offset: int, limit: int) -> list[Record]:
        """Records with offset >= ``offset`` (what compaction or retention left)."""
        source = self.latest.values() if self.upsert else self.records
        out: list[Record] = []
        if not self.upsert and self.records and offset >= self.records[0].offset:
            start = offset - self.records[0].offset
            for i in range(start, min(len(self.records), start + limit)):
                out.append(self.records[i])
            return out
        for record in source:
            if record.offset >= offset:
                out.append(record)
                if len(out) >= limit:
                    break
        return out


class LocalBus(Bus):
    """In-process bus; ``path`` makes it durable across restarts."""

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
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout = publish_timeout
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._file: object | None = None
        # fsync runs on a thread of its own: in the shared default executor it would queue
        # behind whatever else uses it (scrypt checks of a reconnect storm, the ocpp
        # library's schema validation) and acknowledgements would time out under load.
        self._executor: ThreadPoolExecutor | None = None
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        for topic in topic_names.ALL_TOPICS:
            self._log(topic)
        if self._path is not None:
            self._path.mkdir(parents=True, exist_ok=True)
            self._load()
            self._file = open(self._path / "bus.log", "ab")  # noqa: SIM115
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="localbus-wal")
            self._writer = asyncio.create_task(self._write_loop(), name="localbus-wal")
        self._running = True

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._writer is not None:
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._save_groups()
        for log in self._logs.values():
            log.changed.set()

    # -- publish -----------------------------------------------------------------------
    async def publish(self, topic: str, key: str | None, value: bytes | None) -> None:
        await self.publish_many([Message(topic, key, value)])

    async def publish_many(self, messages: Sequence[Message]) -> None:
        if not self._running:
            raise PublishError("bus is stopped")
        try:
            async with asyncio.timeout(self._timeout):
                async with self._slots:
                    now = int(time.time() * 1000)
                    if self._file is not None:
                        lines = b"".join(_wal_line(m, now) for m in messages)
                        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                        self._pending.append((lines, done))
                        self._wake.set()
                        await asyncio.shield(done)
                    for m in messages:
                        self._log(m.topic).append(m.key, m.value, now)
        except TimeoutError as exc:
            raise PublishError(f"not durable within {self._timeout} s") from exc
        except OSError as exc:
            raise PublishError(f"write-ahead log failed: {exc}") from exc

    async def _write_loop(self) -> None:
        """Group commit: write everything pending, fsync once, resolve every waiter."""
        loop = asyncio.get_running_loop()
        while self._running or self._pending:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            data = b"".join(lines for lines, _ in batch)
            try:
                await loop.run_in_executor(self._executor, self._append_sync, data)
            except OSError as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

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
        positions = {}
        for t in topics:
            log = self._log(t)
            positions[t] = committed.get(t, 0 if from_beginning else log.next_offset)
        return _LocalSubscription(self, list(topics), positions, committed if group else None)

    def _log(self, topic: str) -> _Log:
        log = self._logs.get(topic)
        if log is None:
            log = self._logs[topic] = _Log(topic, self._retention)
        return log

    def _commit(self, group_offsets: dict[str, int], positions: dict[str, int]) -> None:
        group_offsets.update(positions)
        if self._path is not None:
            self._save_groups()

    # -- persistence -------------------------------------------------------------------
    def _load(self) -> None:
        assert self._path is not None
        wal = self._path / "bus.log"
        if wal.exists():
            with open(wal, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # a torn last write: never acknowledged, so safe to drop
                    entry = json.loads(line)
                    value = entry["v"]
                    self._log(entry["t"]).append(
                        entry["k"], None if value is None else base64.b64decode(value), entry["ts"]
                    )
        groups = self._path / "groups.json"
        if groups.exists():
            self._groups = json.loads(groups.read_text())

    def _save_groups(self) -> None:
        assert self._path is not None
        tmp = self._path / "groups.json.tmp"
        tmp.write_text(json.dumps(self._groups))
        tmp.replace(self._path / "groups.json")


def _wal_line(m: Message, ts_ms: int) -> bytes:
    value = None if m.value is None else base64.b64encode(m.value).decode()
    return json.dumps({"t": m.topic, "k": m.key, "v": value, "ts": ts_ms}).encode() + b"\n"


class _LocalSubscription(Subscription):
    def __init__(
        self,
        bus: LocalBus,
        topics: list[str],
        positions: dict[str, int],
        group_offsets: dict[str, int] | None,
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._positions = positions
        self._group_offsets = group_offsets
        self._closed = False

    async def batch(self, max_records: int = 500, timeout: float = 0.1) -> list[Record]:
        if self._closed:
            raise BusClosed("subscription closed")
        out = self._take(max_records)
        if out or timeout <= 0:
            return out
        waits = [asyncio.ensure_future(self._bus._log(t).changed.wait()) for t in self._topics]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self._take(max_records)

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for t in self._topics:
            if len(out) >= max_records:
                break
            records = self._bus._log(t).after(self._positions[t], max_records - len(out))
            if records:
                self._positions[t] = records[-1].offset + 1
                out.extend(records)
        return out

    async def commit(self) -> None:
        if self._group_offsets is not None:
            self._bus._commit(self._group_offsets, dict(self._positions))

    async def lag(self) -> int | None:
        # Exact for append-only topics; for compacted ones it counts superseded offsets too.
        return sum(max(0, self._bus._log(t).next_offset - self._positions[t]) for t in self._topics)

    async def close(self) -> None:
        self._closed = True
