"""Which utility reports were delivered, so a restart or the next poll sends none twice.

One sqlite table next to the revision store (``<data-dir>/dr-reports.sqlite3``); a key is
marked only after the VTN accepted the report, so a failed POST is retried next round.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path


class ReportLog:
    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path / "dr-reports.sqlite3", isolation_level=None)
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
