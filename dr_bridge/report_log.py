"""Which utility reports were delivered, so a restart or the next poll sends none twice.

One table in the revision store's sqlite file (``<data-dir>/dr-revisions.sqlite3``, 0600,
created by :class:`dr_bridge.revisions.RevisionStore`); a key is marked only after the VTN
accepted the report, so a failed POST is retried next round.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path


class ReportLog:
    def __init__(self, db_path: str | Path) -> None:
        self._db = sqlite3.connect(Path(db_path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sent (source TEXT NOT NULL, key TEXT NOT NULL, "
            "sent_at TEXT NOT NULL, PRIMARY KEY (source, key))"
        )

    def sent(self, source: str, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sent WHERE source = ? AND key = ?", (source, key)
        ).fetchone()
        return row is not None

    def mark(self, source: str, key: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sent (source, key, sent_at) VALUES (?, ?, ?)",
            (source, key, datetime.now(UTC).isoformat()),
        )

    def close(self) -> None:
        self._db.close()
