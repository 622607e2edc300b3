"""``gridctl query NAME``: run ``sql/NAME.sql`` against the engine and print its rows.

The queries are plain SQL over the pipeline's views, so they run unchanged on RisingWave
and on the embedded engine's PostgreSQL. Exit codes: 0 done; 1 the query failed; 2 no such
query or no database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.database import DEFAULT_PG_PORT, DatabaseUrlOption, PgPortOption, dsn_or_exit
from cli.options import DEFAULT_DATA_DIR, DataDirOption
from cli.output import CsvOption, JsonOption, choose, emit
from cli.paths import project_dir


def available(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or project_dir("sql")).glob("*.sql"))


def run_queries(
    database_url: str, names: list[str], directory: Path | None = None
) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
    """Columns and rows of each ``sql/<name>.sql``, over one connection.

    FileNotFoundError if there is no such query. ``prepare_threshold=None``: RisingWave
    takes no server-side prepared statements.
    """
    import psycopg

    folder = directory or project_dir("sql")
    texts = [(folder / f"{name}.sql").read_text(encoding="utf-8") for name in names]
    out = []
    with psycopg.connect(
        database_url, autocommit=True, prepare_threshold=None, connect_timeout=10
    ) as conn:
        for text in texts:
            cur = conn.execute(text)  # type: ignore[arg-type]
            out.append(([d.name for d in cur.description or []], cur.fetchall()))
    return out


def run_query(
    database_url: str, name: str, directory: Path | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows of ``sql/<name>.sql``."""
    return run_queries(database_url, [name], directory)[0]


def query(
    name: Annotated[str, typer.Argument(help="Query name: a file sql/NAME.sql.")],
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    pg_port: PgPortOption = DEFAULT_PG_PORT,
    json_out: JsonOption = False,
    csv_out: CsvOption = False,
) -> None:
    """Run a NOC query from sql/ and print its rows."""
    fmt = choose(json_out, csv_out)
    if name not in available():
        typer.echo(f"error: no query {name!r}; available: {', '.join(available())}", err=True)
        raise typer.Exit(2)
    dsn = dsn_or_exit(database_url, data_dir, pg_port)
    try:
        columns, rows = run_query(dsn, name)
    except Exception as exc:  # psycopg errors: one line, exit 1
        typer.echo(f"error: {name}: {str(exc).strip().splitlines()[0]}", err=True)
        raise typer.Exit(1) from exc
    emit(fmt, f"{name} ({len(rows)})", columns, rows)


def register(app: typer.Typer) -> None:
    app.command("query")(query)
