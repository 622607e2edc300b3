"""The history table in the target database: what was applied, how far, with which checksum.

One row per application attempt of a file (Flyway's ``flyway_schema_history``, plus the
statement progress RisingWave needs because its DDL is not transactional). The latest row of
a script is its state. The same SQL runs on RisingWave (a plain table; ``FLUSH`` after each
write so the next read sees it) and PostgreSQL. Values are bound client-side
(``ClientCursor``): RisingWave's DDL path takes no ``$n`` parameters and this keeps both
engines on one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from pipeline.migrate.deps import DbObject
from pipeline.migrate.engine import RISINGWAVE

TABLE = "gridctl_schema_history"

_COLUMNS = (
    "installed_rank, version, description, type, script, checksum, statements_done, "
    "statements_total, prefix_checksum, objects, installed_on, execution_time, success, error"
)

CREATE_SQL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    installed_rank INT PRIMARY KEY,
    version VARCHAR,
    description VARCHAR,
    type VARCHAR,
    script VARCHAR,
    checksum BIGINT,
    statements_done INT,
    statements_total INT,
    prefix_checksum BIGINT,
    objects VARCHAR,
    installed_on TIMESTAMPTZ,
    execution_time INT,
    success BOOLEAN,
    error VARCHAR
)"""


@dataclass
class HistoryRow:
    """One application attempt. ``statements_done`` counts statements applied from the start
    of the file; ``prefix_checksum`` covers exactly those, so a failed file may be corrected
    after the failed statement and resumed."""

    installed_rank: int
    version: str | None
    description: str
    type: str
    script: str
    checksum: int
    statements_done: int
    statements_total: int
    prefix_checksum: int
    objects: str
    installed_on: datetime | None
    execution_time: int
    success: bool
    error: str | None = None

    @property
    def created_objects(self) -> list[DbObject]:
        out = []
        for item in filter(None, (self.objects or "").split(";")):
            kind, _, name = item.partition(":")
            out.append(DbObject(kind, name))
        return out

    @property
    def complete(self) -> bool:
        return self.success and self.statements_done >= self.statements_total


def encode_objects(objects: list[DbObject]) -> str:
    return ";".join(f"{o.kind}:{o.name}" for o in objects)


class History:
    """Read and write the history table over one autocommit connection."""

    def __init__(self, conn: psycopg.Connection[Any], engine: str):
        self.conn = conn
        self.engine = engine

    def _flush(self) -> None:
        if self.engine == RISINGWAVE:
            self.conn.execute("FLUSH")

    def exists(self) -> bool:
        row = self.conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = %s", (TABLE,)
        ).fetchone()
        return bool(row and row[0])

    def ensure(self) -> None:
        self.conn.execute(CREATE_SQL)
        self._flush()

    def rows(self) -> list[HistoryRow]:
        """Every attempt, oldest first; empty when the table does not exist yet."""
        if not self.exists():
            return []
        cur = psycopg.ClientCursor(self.conn)
        cur.execute(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY installed_rank")
        return [HistoryRow(*r) for r in cur.fetchall()]

    def latest(self) -> dict[str, HistoryRow]:
        """Script -> its most recent attempt."""
        return {r.script: r for r in self.rows()}

    def start(self, row: HistoryRow) -> HistoryRow:
        """Insert a new attempt (rank after the last) and return it."""
        cur = psycopg.ClientCursor(self.conn)
        last = cur.execute(f"SELECT max(installed_rank) FROM {TABLE}").fetchone()
        row.installed_rank = int(last[0] or 0) + 1 if last else 1
        row.installed_on = datetime.now(UTC)
        cur.execute(
            f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row.installed_rank,
                row.version,
                row.description,
                row.type,
                row.script,
                row.checksum,
                row.statements_done,
                row.statements_total,
                row.prefix_checksum,
                row.objects,
                row.installed_on,
                row.execution_time,
                row.success,
                row.error,
            ),
        )
        self._flush()
        return row

    def save(self, row: HistoryRow) -> None:
        """Write the progress of an attempt (after each statement, on success, on failure)."""
        cur = psycopg.ClientCursor(self.conn)
        cur.execute(
            f"UPDATE {TABLE} SET checksum = %s, statements_done = %s, statements_total = %s, "
            "prefix_checksum = %s, objects = %s, execution_time = %s, success = %s, error = %s "
            "WHERE installed_rank = %s",
            (
                row.checksum,
                row.statements_done,
                row.statements_total,
                row.prefix_checksum,
                row.objects,
                row.execution_time,
                row.success,
                row.error,
                row.installed_rank,
            ),
        )
        self._flush()
