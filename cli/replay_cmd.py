"""``gridctl replay INPUT.jsonl --out OUTPUT.jsonl``: the pipeline on a virtual clock.

Exit codes: 0 done; 1 a bad input line (the message names line and field) or a failed
migration; 2 usage (bad --tick, --until or --var).
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """``1s``, ``500ms``, ``2m``, ``1h`` or plain seconds -> timedelta."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if m is None:
        raise typer.BadParameter(f"{text!r}: expected e.g. 1s, 500ms, 2m")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])


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
    from pipeline.migrate.files import parse_var_assignments
    from pipeline.replay import parse_ts, read_input
    from pipeline.replay import replay as run_replay

    try:
        step = parse_duration(tick)
        values = parse_var_assignments(var)
        end = parse_ts(until, 0, "--until") if until else None
    except (typer.BadParameter, ReplayError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        with open(input, encoding="utf-8") as f:
            records = read_input(f)
    except ReplayError as exc:
        typer.echo(f"error: {input}: {exc}", err=True)
        raise typer.Exit(1) from exc
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
