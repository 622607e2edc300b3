"""Apply the migrations to a PostgreSQL database, compiled, without migration history.

Replay and tests need a fresh database with the pipeline in it and nothing else; the full
runner (``pipeline.migrate``: history, resume, rebuild of edited files) is for long-lived
databases. Files are discovered, substituted and split by ``pipeline.migrate.files`` so both
read the migrations the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import psycopg

from pipeline.compiler import BOOTSTRAP_SQL, compile_statement
from pipeline.migrate.files import discover, load_vars, substitute

#: The repository's migrations directory.
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

#: Value for ``${kafka_bootstrap}`` when nothing else is given: the embedded engine reads
#: the bus, never Kafka directly, so the value is only recorded.
EMBEDDED_BOOTSTRAP = "embedded"


def compiled_statements(
    directory: str | Path = MIGRATIONS, overrides: Mapping[str, str] | None = None
) -> list[str]:
    """Every PostgreSQL statement the migrations compile to, bootstrap first."""
    values = {"kafka_bootstrap": EMBEDDED_BOOTSTRAP}
    values.update(load_vars(Path(directory), overrides))
    out = list(BOOTSTRAP_SQL)
    for mf in discover(directory):
        for stmt in mf.statements:
            out.extend(compile_statement(substitute(stmt, values, mf.script)))
    return out


def apply_migrations(
    dsn: str, directory: str | Path = MIGRATIONS, overrides: Mapping[str, str] | None = None
) -> int:
    """Compile and execute every migration in one transaction; returns the statement count."""
    statements = compiled_statements(directory, overrides)
    with psycopg.connect(dsn) as conn:
        for sql in statements:
            conn.execute(sql)  # type: ignore[arg-type]
    return len(statements)
