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


class NoDatabase(LookupError):
    """Neither a URL nor a running ``gridctl run`` in the data dir; the message says so."""


def resolve_dsn(database_url: str | None, data_dir: Path) -> str:
    if database_url:
        return database_url
    state = read_state(data_dir)
    if state and state.get("database_url"):
        return str(state["database_url"])
    raise NoDatabase(
        f"no database: no `gridctl run` is using --data-dir {data_dir}; start one, "
        "or pass --database-url (or set GRIDCTL_DATABASE_URL)"
    )


def dsn_or_exit(database_url: str | None, data_dir: Path) -> str:
    """:func:`resolve_dsn`, or one line on stderr and exit 2."""
    try:
        return resolve_dsn(database_url, data_dir)
    except NoDatabase as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
