"""``gridctl migrate up|status|plan|verify|lint``: a thin shell over ``pipeline.migrate``.

Exit codes: 0 success; 1 a migration, check or lint failed (the message names file and
statement); 2 usage (no database URL, bad ``--var``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.migration_vars import parse_vars
from pipeline.migrate import RULES, MigrateError, Migrator, lint_dir

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="GRIDCTL_DATABASE_URL",
        help="postgresql:// URL of PostgreSQL or RisingWave (env GRIDCTL_DATABASE_URL).",
    ),
]
Vars = Annotated[
    list[str] | None,
    typer.Option("--var", help="NAME=VALUE for a ${NAME} placeholder (repeatable)."),
]
Dir = Annotated[
    Path,
    typer.Option(
        "--migrations",
        "--dir",
        envvar="GRIDCTL_MIGRATIONS",
        help="Folder of migration files (as `gridctl run --migrations`).",
    ),
]

_STATE_STYLE = {"applied": "green", "pending": "yellow", "changed": "magenta"}


def _resolve(directory: Path) -> Path:
    """``./migrations`` by default; outside a checkout, the folder shipped next to the code
    (what ``gridctl run`` applies too)."""
    if directory == Path("migrations") and not directory.is_dir():
        shipped = Path(__file__).resolve().parent.parent / "migrations"
        if shipped.is_dir():
            return shipped
    return directory


def _migrator(database_url: str | None, directory: Path, var: list[str] | None) -> Migrator:
    directory = _resolve(directory)
    if not database_url:
        typer.echo("error: no database: pass --database-url or set GRIDCTL_DATABASE_URL", err=True)
        raise typer.Exit(2)
    try:
        return Migrator(database_url, directory, parse_vars(var, directory))
    except MigrateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _fail(exc: MigrateError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def up(
    database_url: DatabaseUrl = None, var: Vars = None, directory: Dir = Path("migrations")
) -> None:
    """Apply pending V files, then new or changed R files (with their dependents)."""
    m = _migrator(database_url, directory, var)
    try:
        done = m.up()
    except MigrateError as exc:
        raise _fail(exc) from exc
    for line in done:
        typer.echo(f"applied {line}")
    typer.echo(f"{m.engine}: {len(done)} file(s) applied" if done else f"{m.engine}: up to date")


def plan(
    database_url: DatabaseUrl = None, var: Vars = None, directory: Dir = Path("migrations")
) -> None:
    """Print the statements `up` would run (after substitution; compiled for PostgreSQL)."""
    m = _migrator(database_url, directory, var)
    try:
        typer.echo(m.plan(), nl=False)
    except MigrateError as exc:
        raise _fail(exc) from exc


def status(
    database_url: DatabaseUrl = None, var: Vars = None, directory: Dir = Path("migrations")
) -> None:
    """Every migration file with its state: applied, pending, changed, failed at statement n."""
    m = _migrator(database_url, directory, var)
    try:
        rows = m.status()
    except MigrateError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"migrations ({m.engine})")
    for column in ("script", "type", "version", "state", "installed on"):
        table.add_column(column)
    for r in rows:
        style = _STATE_STYLE.get(r.state, "red")
        table.add_row(
            r.script, r.type, r.version or "", f"[{style}]{r.state}[/]", r.installed_on or ""
        )
    Console(width=140).print(table)


def verify(
    database_url: DatabaseUrl = None, var: Vars = None, directory: Dir = Path("migrations")
) -> None:
    """Compare applied checksums with the files; exit 1 naming each mismatch."""
    m = _migrator(database_url, directory, var)
    try:
        problems = m.verify()
    except MigrateError as exc:
        raise _fail(exc) from exc
    for p in problems:
        typer.echo(p, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("verify: applied migrations match the files")


def lint(
    var: Vars = None,
    directory: Dir = Path("migrations"),
    rules: Annotated[bool, typer.Option("--rules", help="List the rules and exit.")] = False,
) -> None:
    """Check every statement against sqlglot's RisingWave dialect and the project rules."""
    if rules:
        for rule, text in RULES.items():
            typer.echo(f"{rule:<26} {text}")
        return
    directory = _resolve(directory)
    try:
        findings = lint_dir(directory, parse_vars(var, directory))
    except MigrateError as exc:
        raise _fail(exc) from exc
    for f in findings:
        typer.echo(str(f))
    if findings:
        typer.echo(f"{len(findings)} finding(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"lint: {directory}: no findings")


def register(app: typer.Typer) -> None:
    """Add the ``migrate`` command group to the ``gridctl`` app."""
    group = typer.Typer(
        help="Apply, plan, verify and lint the SQL migrations.", no_args_is_help=True
    )
    for command in (up, status, plan, verify, lint):
        group.command(command.__name__)(command)
    app.add_typer(group, name="migrate")
