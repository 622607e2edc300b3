"""``gridctl status``: the NOC's first look — zones, loads, caps, active signals, alerts.

Runs the queries of ``sql/`` over the Postgres wire protocol, so it answers the same
against the embedded engine and against RisingWave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.query_cmd import _cell, run_queries

#: (query in sql/, title)
SECTIONS = (
    ("zone_utilisation", "zones: load and utilisation"),
    ("active_dr", "active DR signals: cap and compliance"),
    ("signal_states", "DR signal states (enforced, waiting_for_load, infeasible, no_stations)"),
    ("station_limits", "station limits"),
    ("recent_alerts", "recent alerts"),
)


def embedded_dsn(data_dir: Path, pg_port: int) -> str | None:
    """The embedded engine's DSN when ``gridctl run`` uses ``data_dir``."""
    if (data_dir / "postgres" / "pgdata").is_dir():
        return f"postgresql://postgres@127.0.0.1:{pg_port}/gridctl"
    return None


def status(
    database_url: Annotated[str | None, typer.Option(envvar="GRIDCTL_DATABASE_URL")] = None,
    data_dir: Annotated[Path, typer.Option(envvar="GRIDCTL_DATA_DIR")] = Path(".gridctl"),
    pg_port: Annotated[int, typer.Option(envvar="GRIDCTL_PG_PORT")] = 54329,
) -> None:
    """Zones, loads, caps, active signals and alerts (default: the local embedded engine)."""
    dsn = database_url or embedded_dsn(data_dir, pg_port)
    if dsn is None:
        typer.echo(
            "error: no database: pass --database-url, set GRIDCTL_DATABASE_URL, "
            f"or start `gridctl run` with --data-dir {data_dir}",
            err=True,
        )
        raise typer.Exit(2)
    try:
        results = run_queries(dsn, [name for name, _ in SECTIONS])
    except Exception as exc:  # a connection or SQL error: one line, exit 1
        typer.echo(f"error: {exc}".splitlines()[0], err=True)
        raise typer.Exit(1) from exc
    console = Console()
    for (_, title), (columns, rows) in zip(SECTIONS, results, strict=True):
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows[:50]:
            table.add_row(*(_cell(v) for v in row))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
