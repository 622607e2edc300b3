"""Which database ``status`` and ``query`` read: the flag, the environment, or the one the
``gridctl run`` owning the data dir recorded (``DATA_DIR/run.json``, see :mod:`cli.datadir`).

So ``gridctl query station_limits`` works right after ``gridctl run`` with no flags, on
whatever port the embedded PostgreSQL got.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.datadir import read_state

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="GRIDCTL_DATABASE_URL",
        help="postgresql:// URL of the engine; default: the one `gridctl run` in --data-dir uses.",
    ),
]


PgPortOption = Annotated[
    int,
    typer.Option(
        "--pg-port",
        envvar="GRIDCTL_PG_PORT",
        help="Port of the embedded PostgreSQL when no `gridctl run` recorded one.",
    ),
]
DEFAULT_PG_PORT = 54329


class NoDatabase(LookupError):
    """Neither a URL nor a running ``gridctl run`` in the data dir; the message says so."""


def resolve_dsn(database_url: str | None, data_dir: Path, pg_port: int = DEFAULT_PG_PORT) -> str:
    """The flag or environment; else what the running owner recorded; else the embedded
    cluster's read-only role on ``pg_port`` (a server someone started on that data dir)."""
    if database_url:
        return database_url
    state = read_state(data_dir)
    if state and state.get("database_url"):
        return str(state["database_url"])
    from pipeline.embedded_pg_auth import embedded_reader_dsn

    reader = embedded_reader_dsn(data_dir, pg_port)
    if reader:
        return reader
    raise NoDatabase(
        f"no database: no `gridctl run` is using --data-dir {data_dir}; start one, "
        "or pass --database-url (or set GRIDCTL_DATABASE_URL)"
    )


def dsn_or_exit(database_url: str | None, data_dir: Path, pg_port: int = DEFAULT_PG_PORT) -> str:
    """:func:`resolve_dsn`, or one line on stderr and exit 2."""
    try:
        return resolve_dsn(database_url, data_dir, pg_port)
    except NoDatabase as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
