"""The DR event report of one signal: ``sql/dr_report.sql`` read for it, shaped for JSON/CSV.

The SQL does the arithmetic (one place, the same on both engines); this module only picks
one signal's rows, splits them into the event's totals and its minutes, and writes CSV.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from pipeline.paths import project_dir

#: columns that describe the whole event (repeated on each row of the query)
SUMMARY = (
    "signal_id",
    "zone_id",
    "signal_type",
    "priority",
    "source",
    "start_ts",
    "end_ts",
    "baseline_kw",
    "baseline_method",
    "cap_kw",
    "minutes_measured",
    "energy_kwh",
    "reduction_kwh",
    "avg_reduction_kw",
    "peak_reduction_kw",
    "compliance_pct",
    "commands_sent",
    "commands_accepted",
    "commands_not_supported",
    "commands_rejected",
    "commands_failed",
    "uncontrollable_stations",
)
MINUTE = ("minute_start", "minute_end", "cap_kw", "load_kw", "reduction_kw", "under_cap")


def report_sql() -> str:
    return (project_dir("sql") / "dr_report.sql").read_text(encoding="utf-8")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def shape(columns: list[str], rows: list[tuple[Any, ...]]) -> dict[str, Any] | None:
    """``{...totals, "minutes": [...]}`` from the query's rows of one signal; None if none."""
    if not rows:
        return None
    first = dict(zip(columns, rows[0], strict=True))
    out: dict[str, Any] = {k: _plain(first[k]) for k in SUMMARY}
    stations = first["uncontrollable_stations"]
    out["uncontrollable_stations"] = sorted(stations.split(",")) if stations else []
    minutes = []
    for row in rows:
        item = dict(zip(columns, row, strict=True))
        if item["minute_start"] is not None:
            minutes.append({k: _plain(item[k]) for k in MINUTE})
    out["minutes"] = minutes
    return out


async def fetch(database_url: str, signal_id: str) -> dict[str, Any] | None:
    """The report of ``signal_id`` from the engine's database; None if it has no such signal."""
    import psycopg

    query = f"SELECT * FROM ({report_sql()}) AS report WHERE signal_id = %s"
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, prepare_threshold=None
    ) as conn:
        cur = await conn.execute(query, (signal_id,))  # type: ignore[arg-type]
        columns = [d.name for d in cur.description or []]
        rows = await cur.fetchall()
    # ORDER BY inside a subquery is not kept: order the minutes here
    rows.sort(
        key=lambda r: (
            r[columns.index("minute_start")] is None,
            r[columns.index("minute_start")] or 0,
        )
    )
    return shape(columns, rows)


def to_csv(report: dict[str, Any]) -> str:
    """One line per minute: the event's columns, then the minute's (a spreadsheet's shape)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = [c for c in SUMMARY if c != "cap_kw"]
    writer.writerow([*head, *MINUTE])
    stations = ";".join(report["uncontrollable_stations"])
    event = [stations if c == "uncontrollable_stations" else report[c] for c in head]
    for minute in report["minutes"] or [dict.fromkeys(MINUTE)]:
        writer.writerow([*event, *(minute[c] for c in MINUTE)])
    return buf.getvalue()
