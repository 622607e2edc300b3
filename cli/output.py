"""Tables for people, JSON and CSV for scripts: one way every listing command prints.

On a terminal a table fits the screen (long ids fold onto the next line, never cut with
an ellipsis); in a pipe nothing is folded or cut, so ids can be copied into the next
command. ``--json`` prints a list of objects (timestamps RFC 3339), ``--csv`` a header
line and rows.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (a list of objects).")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV with a header line.")]


def choose(json_out: bool, csv_out: bool) -> str:
    if json_out and csv_out:
        raise typer.BadParameter("give --json or --csv, not both", param_hint="--csv")
    return "json" if json_out else "csv" if csv_out else "table"


def plain(value: Any) -> Any:
    """A JSON-ready value: timestamps as RFC 3339 text, NUMERIC as float."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def cell(value: Any) -> str:
    """How a value reads in a table or CSV: seconds precision, no trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def console() -> Console:
    """A console that never truncates when the output is not a terminal."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=100_000, soft_wrap=True)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(cell(v) for v in row))
    return out


def emit(
    fmt: str,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Print one listing in ``fmt`` (table, json or csv)."""
    if fmt == "json":
        typer.echo(json.dumps(records(columns, rows), indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([cell(v) for v in row] for row in rows)
    else:
        console().print(table(title, columns, rows))
