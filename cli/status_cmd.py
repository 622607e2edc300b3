"""``gridctl status``: the NOC's first look — zones, stations, active signals, limits, alerts.

Runs the queries of ``sql/`` over the Postgres wire protocol, so it answers the same
against the embedded engine and against RisingWave. ``--json`` prints one object keyed
by section (with ``--watch``, one such object per line per interval).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from cli.database import DEFAULT_PG_PORT, DatabaseUrlOption, PgPortOption, dsn_or_exit
from cli.durations import duration_option
from cli.options import DEFAULT_DATA_DIR, DataDirOption
from cli.output import JsonOption, console, records, table
from cli.query_cmd import run_queries

#: (query in sql/, title)
SECTIONS = (
    ("zone_utilisation", "zones: load and utilisation"),
    ("station_counts", "stations: online and offline per zone"),
    ("active_dr", "active DR signals: cap and compliance"),
    ("signal_states", "DR signal states (enforced, waiting_for_load, infeasible, no_stations)"),
    ("station_limits", "station limits"),
    ("recent_alerts", "recent alerts"),
)
#: rows shown per section in a table (JSON has them all)
TABLE_ROWS = 50


Section = tuple[str, str, list[str], list[tuple[Any, ...]]]


def _collect(dsn: str) -> list[Section]:
    try:
        results = run_queries(dsn, [name for name, _ in SECTIONS])
    except Exception as exc:  # a connection or SQL error: one line, exit 1
        typer.echo(f"error: {str(exc).strip().splitlines()[0]}", err=True)
        raise typer.Exit(1) from exc
    return [
        (name, title, columns, rows)
        for (name, title), (columns, rows) in zip(SECTIONS, results, strict=True)
    ]


def _print(
    sections: list[tuple[str, str, list[str], list[tuple[Any, ...]]]], as_json: bool
) -> None:
    if as_json:
        doc: dict[str, Any] = {"at": datetime.now(UTC).isoformat()}
        doc.update({name: records(columns, rows) for name, _, columns, rows in sections})
        typer.echo(json.dumps(doc))
        return
    out = console()
    for _, title, columns, rows in sections:
        shown = rows[:TABLE_ROWS]
        more = f", first {TABLE_ROWS} shown" if len(rows) > TABLE_ROWS else ""
        out.print(table(f"{title} ({len(rows)}{more})", columns, shown))


def status(
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    pg_port: PgPortOption = DEFAULT_PG_PORT,
    json_out: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Repeat every --interval.")] = False,
    interval: Annotated[
        str,
        typer.Option(
            "--interval",
            help="With --watch: 2s, 30s, 1m.",
            callback=duration_option("--interval", minimum=0.2),
        ),
    ] = "2s",
) -> None:
    """Zones, stations, loads, caps, active signals and alerts (default: the `gridctl run`
    of --data-dir)."""
    dsn = dsn_or_exit(database_url, data_dir, pg_port)
    period = float(interval)
    if not watch:
        _print(_collect(dsn), json_out)
        return
    try:
        while True:
            sections = _collect(dsn)
            if not json_out:
                console().clear()
            _print(sections, json_out)
            time.sleep(period)
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    app.command("status")(status)
