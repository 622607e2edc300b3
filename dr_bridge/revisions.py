"""The revision store: what each source last said about each event, and what is unsent.

Why: every way in (API, OpenADR 2.0b, OpenADR 3) must end as exactly one record per
revision on ``grid.demand_response``, across restarts and repeated polls. The store keeps,
per ``(source, event id)``, the last revision and the signal ids it produced, and per
``(signal_id, modification)`` the record and whether the bus has confirmed it. A record is
written here *before* it is published (an outbox), so a failed or interrupted publish is
retried from here and never dropped.

sqlite3 from the standard library, WAL journal with ``synchronous=FULL``: a committed
revision survives a crash (one fsync per revision, about a millisecond here; DR signals
are rare enough to do it on the event loop). Confirmation marks skip the fsync.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dr_bridge.errors import StoredRecordInvalid, StoreUnusable
from pipeline.contracts import ContractError, DemandResponseSignal, decode, encode

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    source TEXT NOT NULL,
    ext_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    tag TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    signal_ids TEXT NOT NULL,
    PRIMARY KEY (source, ext_id)
);
CREATE TABLE IF NOT EXISTS signals (
    signal_id TEXT NOT NULL,
    modification INTEGER NOT NULL,
    source TEXT NOT NULL,
    ext_id TEXT NOT NULL,
    record BLOB NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (signal_id, modification)
);
CREATE INDEX IF NOT EXISTS signals_pending ON signals (confirmed) WHERE confirmed = 0;
"""


@dataclass(frozen=True, slots=True)
class EventState:
    """The last stored revision of one event of one source."""

    source: str
    ext_id: str
    revision: int
    tag: str
    content_hash: str
    signal_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredSignal:
    """The latest revision of a signal and whether the bus confirmed it."""

    signal: DemandResponseSignal
    confirmed: bool
    ext_id: str


def restore_of(signal: DemandResponseSignal, modification: int) -> DemandResponseSignal:
    """The RESTORE revision ending ``signal``: same id, zone and window, no amount."""
    return DemandResponseSignal(
        signal_id=signal.signal_id,
        modification=modification,
        zone_id=signal.zone_id,
        signal_type="RESTORE",
        start_ts=signal.start_ts,
        end_ts=signal.end_ts,
        priority=signal.priority,
        source=signal.source,
        received_ts=datetime.now(UTC),
        event_id=signal.event_id,
        event_priority=signal.event_priority,
    )


class RevisionStore:
    """Revisions per (source, event) and an outbox of records per (signal, modification)."""

    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / "dr-revisions.sqlite3"
        try:
            # 0600 from the first byte (SQLite gives its -wal and -shm files the same
            # mode): signals and their sources are the operator's business only.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            if self.path.stat().st_uid == os.geteuid():
                self.path.chmod(0o600)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnusable(f"DR revision store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    # -- events ------------------------------------------------------------------------
    def event(self, source: str, ext_id: str) -> EventState | None:
        row = self._db.execute(
            "SELECT revision, tag, content_hash, signal_ids FROM events "
            "WHERE source = ? AND ext_id = ?",
            (source, ext_id),
        ).fetchone()
        if row is None:
            return None
        return EventState(source, ext_id, row[0], row[1], row[2], tuple(json.loads(row[3])))

    def events(self, source: str) -> list[EventState]:
        rows = self._db.execute(
            "SELECT ext_id, revision, tag, content_hash, signal_ids FROM events WHERE source = ?",
            (source,),
        ).fetchall()
        return [EventState(source, r[0], r[1], r[2], r[3], tuple(json.loads(r[4]))) for r in rows]

    def commit_revision(
        self,
        source: str,
        ext_id: str,
        revision: int,
        tag: str,
        content_hash: str,
        signals: list[DemandResponseSignal],
    ) -> list[DemandResponseSignal]:
        """Store the complete set of signals of an event at ``revision``, atomically.

        Signals of the previous revision that are missing now (a cancelled event, a zone
        no longer targeted, fewer intervals) get a RESTORE at ``revision``, unless they
        already ended. Returns every record to publish; all are queued unconfirmed.
        The caller has checked that ``revision`` moves forward.
        """
        previous = self.event(source, ext_id)
        out = list(signals)
        present = {s.signal_id for s in signals}
        if previous is not None:
            for signal_id in previous.signal_ids:
                if signal_id in present:
                    continue
                latest = self.latest(signal_id)
                if latest is not None and latest.signal.signal_type != "RESTORE":
                    out.append(restore_of(latest.signal, revision))
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO events (source, ext_id, revision, tag, content_hash, signal_ids) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, ext_id) DO UPDATE SET "
                "revision = excluded.revision, tag = excluded.tag, "
                "content_hash = excluded.content_hash, signal_ids = excluded.signal_ids",
                (source, ext_id, revision, tag, content_hash, json.dumps(sorted(present))),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO signals (signal_id, modification, source, ext_id, record, "
                "confirmed) VALUES (?, ?, ?, ?, ?, 0)",
                [(s.signal_id, s.modification, source, ext_id, encode(s)) for s in out],
            )
        return out

    def add_record(
        self, source: str, ext_id: str, record: DemandResponseSignal, *, bump_revision: bool
    ) -> None:
        """Queue one more record of an event (an operator's cancel), atomically.

        ``bump_revision`` raises the event's revision to the record's modification (and
        marks its content as the RESTORE, so re-sending the old content at that
        modification is stale, not a repeat).
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO signals (signal_id, modification, source, ext_id, "
                "record, confirmed) VALUES (?, ?, ?, ?, ?, 0)",
                (record.signal_id, record.modification, source, ext_id, encode(record)),
            )
            if bump_revision:
                self._db.execute(
                    "UPDATE events SET revision = MAX(revision, ?), content_hash = 'restore' "
                    "WHERE source = ? AND ext_id = ?",
                    (record.modification, source, ext_id),
                )

    # -- signals -----------------------------------------------------------------------
    def latest(self, signal_id: str) -> StoredSignal | None:
        """The latest revision, or None; one that does not decode counts as none (with a
        warning), so that a new revision can replace it."""
        try:
            return self.latest_checked(signal_id)
        except StoredRecordInvalid as exc:
            log.warning("revision store: %s", exc)
            return None

    def latest_checked(self, signal_id: str) -> StoredSignal | None:
        """The latest revision; :class:`StoredRecordInvalid` when it does not decode."""
        row = self._db.execute(
            "SELECT record, confirmed, ext_id, signal_id, modification FROM signals "
            "WHERE signal_id = ? ORDER BY modification DESC LIMIT 1",
            (signal_id,),
        ).fetchone()
        if row is None:
            return None
        stored = _stored(row)
        if isinstance(stored, Unreadable):
            raise StoredRecordInvalid(stored.signal_id, stored.modification, stored.reason)
        return stored

    def latest_all(self) -> list[StoredSignal]:
        """The latest revision of every signal whose revision decodes."""
        return self.latest_all_checked()[0]

    def latest_all_checked(self) -> tuple[list[StoredSignal], list[Unreadable]]:
        """``(readable, unreadable)`` latest revisions: one bad record never hides the rest."""
        rows = self._db.execute(
            "SELECT s.record, s.confirmed, s.ext_id, s.signal_id, s.modification FROM signals s "
            "JOIN (SELECT signal_id, MAX(modification) AS m FROM signals GROUP BY signal_id"
            ") x ON x.signal_id = s.signal_id AND x.m = s.modification ORDER BY s.signal_id"
        ).fetchall()
        readable: list[StoredSignal] = []
        unreadable: list[Unreadable] = []
        for row in rows:
            stored = _stored(row)
            (unreadable if isinstance(stored, Unreadable) else readable).append(stored)  # type: ignore[arg-type]
        return readable, unreadable

    def pending(self) -> list[DemandResponseSignal]:
        """Records not yet confirmed by the bus, oldest modification first.

        One that does not decode is left where it is (reported by the listing) rather
        than stopping the publication of every other one.
        """
        rows = self._db.execute(
            "SELECT record, 0, ext_id, signal_id, modification FROM signals WHERE confirmed = 0 "
            "ORDER BY signal_id, modification"
        ).fetchall()
        out = []
        for row in rows:
            stored = _stored(row)
            if isinstance(stored, Unreadable):
                log.warning("revision store: %s; not published", stored.reason)
                continue
            out.append(stored.signal)
        return out

    def confirm(self, signal_id: str, modification: int) -> None:
        """Mark a record as on the bus, without an fsync of its own.

        Losing this mark in a power cut only means the record is published once more
        after the restart (same revision, which consumers ignore); skipping the fsync
        halves the store's cost per signal and keeps the event loop free.
        """
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute(
                "UPDATE signals SET confirmed = 1 WHERE signal_id = ? AND modification = ?",
                (signal_id, modification),
            )
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def is_confirmed(self, signal_id: str, modification: int) -> bool:
        row = self._db.execute(
            "SELECT confirmed FROM signals WHERE signal_id = ? AND modification = ?",
            (signal_id, modification),
        ).fetchone()
        return bool(row and row[0])


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored revision that does not decode (the contract changed, or the file did)."""

    signal_id: str
    modification: int
    reason: str


def _stored(row: tuple[bytes, int, str, str, int]) -> StoredSignal | Unreadable:
    try:
        return StoredSignal(decode(DemandResponseSignal, row[0]), bool(row[1]), row[2])
    except ContractError as exc:
        return Unreadable(row[3], row[4], str(exc))
