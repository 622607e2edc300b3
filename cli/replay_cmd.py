"""``gridctl replay INPUT.jsonl --out OUTPUT.jsonl``: the pipeline on a virtual clock.

Exit codes: 0 done; 1 a bad input line (the message names line and field) or a failed
migration; 2 usage (bad --tick, --until or --var).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli.durations import parse_duration
from cli.migration_vars import parse_vars
from cli.runtime import default_migrations_dir


def replay(
    input: Annotated[Path, typer.Argument(help="Recorded events, one JSON object a line.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the sink records.")],
    tick: Annotated[str, typer.Option("--tick", help="Clock step, e.g. 1s, 500ms.")] = "1s",
    until: Annotated[
        str | None, typer.Option("--until", help="Run the clock up to this RFC 3339 time.")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="NAME=VALUE for a migration ${NAME}.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="Use this PostgreSQL instead of a throw-away embedded one."
        ),
    ] = None,
) -> None:
    """Replay recorded events through the pipeline; same input, same output."""
    from pipeline.engine import ReplayError
    from pipeline.replay import parse_ts, read_input
    from pipeline.replay import replay as run_replay

    values = parse_vars(var, default_migrations_dir())
    try:
        step = timedelta(seconds=parse_duration(tick))
        end = parse_ts(until, 0, "--until") if until else None
    except (ReplayError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        with open(input, encoding="utf-8") as f:
            records = read_input(f)
    except OSError as exc:  # missing, a directory, unreadable: name the file, no traceback
        typer.echo(f"error: {input}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except ReplayError as exc:
        typer.echo(f"error: {input}: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        open(out, "w", encoding="utf-8").close()
    except OSError as exc:
        typer.echo(f"error: {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            stats = asyncio.run(
                run_replay(records, f, tick=step, until=end, dsn=database_url, vars=values)
            )
    except Exception as exc:  # migration, compiler and engine errors: one line, exit 1
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    print(
        f"{stats.records} records, {stats.ticks} ticks, {stats.outputs} sink records; "
        f"{stats.wall_seconds:.2f} s ({stats.events_per_second:,.0f} events/s, "
        f"{stats.speedup:,.1f}x real time)",
        file=sys.stderr,
    )


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
