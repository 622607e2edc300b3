"""``gridctl query NAME``: run ``sql/NAME.sql`` against the engine and print a table.

The queries are plain SQL over the pipeline's views, so they run unchanged on RisingWave
and on the embedded engine's PostgreSQL. Exit codes: 0 done; 1 the query failed; 2 no such
query or no database.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

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
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        for text in texts:
            cur = conn.execute(text)  # type: ignore[arg-type]
            out.append(([d.name for d in cur.description or []], cur.fetchall()))
    return out


def run_query(
    database_url: str, name: str, directory: Path | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows of ``sql/<name>.sql``."""
    return run_queries(database_url, [name], directory)[0]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def query(
    name: Annotated[str, typer.Argument(help="Query name: a file sql/NAME.sql.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="GRIDCTL_DATABASE_URL",
            help="postgresql:// URL of the engine (env GRIDCTL_DATABASE_URL).",
        ),
    ] = None,
    data_dir: Annotated[Path, typer.Option(envvar="GRIDCTL_DATA_DIR")] = Path(".gridctl"),
    pg_port: Annotated[int, typer.Option(envvar="GRIDCTL_PG_PORT")] = 54329,
) -> None:
    """Run a NOC query from sql/ and print its rows."""
    from rich.console import Console
    from rich.table import Table

    if name not in available():
        typer.echo(f"error: no query {name!r}; available: {', '.join(available())}", err=True)
        raise typer.Exit(2)
    if not database_url:
        # The read-only role of the embedded engine `gridctl run --data-dir` started.
        from pipeline.embedded_pg_auth import embedded_reader_dsn

        database_url = embedded_reader_dsn(data_dir, pg_port)
    if not database_url:
        typer.echo(
            "error: no database: pass --database-url, set GRIDCTL_DATABASE_URL, "
            f"or start `gridctl run` with --data-dir {data_dir}",
            err=True,
        )
        raise typer.Exit(2)
    try:
        columns, rows = run_query(database_url, name)
    except Exception as exc:  # psycopg errors: one line, exit 1
        typer.echo(f"error: {name}: {exc}", err=True)
        raise typer.Exit(1) from exc
    table = Table(title=name)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("query")(query)
