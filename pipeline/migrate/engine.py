"""The target server: detect the engine and say how a statement is run there.

Both engines speak the Postgres wire protocol. ``SELECT version()`` tells them apart:
RisingWave answers ``PostgreSQL 13.14.0-RisingWave-...``. RisingWave gets the original text
(DDL is not transactional, takes no ``$n`` parameters, and wants ``prepare_threshold=None``);
PostgreSQL gets the text compiled by ``pipeline.compiler``, after its bootstrap SQL.

The compiler is injected (anything with ``compile_statement``, ``compile_drop`` and
``BOOTSTRAP_SQL``), so tests and other engines can hand in their own; by default
``pipeline.compiler`` is imported only when a PostgreSQL target needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg

from pipeline.migrate.errors import MigrateError

RISINGWAVE = "risingwave"
POSTGRES = "postgres"


class Compiler(Protocol):
    """What the runner needs from a RisingWave -> PostgreSQL compiler."""

    BOOTSTRAP_SQL: str

    def compile_statement(self, sql: str) -> Any: ...

    def compile_drop(self, kind: str, name: str) -> Any: ...


def connect(dsn: str) -> psycopg.Connection[Any]:
    """Autocommit, no prepared statements: the settings RisingWave needs, harmless on PG."""
    try:
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
    except psycopg.Error as exc:
        raise MigrateError(f"cannot connect to the database: {exc}") from exc


def detect(conn: psycopg.Connection[Any]) -> str:
    """``"risingwave"`` when the server says so in ``version()``, else ``"postgres"``."""
    row = conn.execute("SELECT version()").fetchone()
    return RISINGWAVE if row and "risingwave" in str(row[0]).lower() else POSTGRES


def _as_sql_list(compiled: Any) -> list[str]:
    """Accept what a compiler may return: a string, several strings, or objects with ``.sql``."""
    if compiled is None:
        return []
    if isinstance(compiled, str):
        return [compiled] if compiled.strip() else []
    if hasattr(compiled, "statements"):
        return _as_sql_list(compiled.statements)
    if hasattr(compiled, "sql") and isinstance(compiled.sql, str):
        return _as_sql_list(compiled.sql)
    if isinstance(compiled, Sequence):
        return [s for item in compiled for s in _as_sql_list(item)]
    return [str(compiled)]


class Target:
    """How statements and drops become SQL on one engine."""

    engine: str

    def bootstrap(self) -> list[str]:
        """SQL to run once before any migration (the compiler's runtime objects)."""
        return []

    @property
    def checksum_salt(self) -> str:
        """What R files' checksums include besides their text ("": the text alone)."""
        return ""

    def translate(self, text: str) -> list[str]:
        raise NotImplementedError

    def drop(self, kind: str, name: str) -> list[str]:
        raise NotImplementedError


class RisingWaveTarget(Target):
    """The original text, verbatim; drops spelled in RisingWave's own words."""

    engine = RISINGWAVE

    def translate(self, text: str) -> list[str]:
        return [text]

    def drop(self, kind: str, name: str) -> list[str]:
        return [f"DROP {kind} IF EXISTS {name}"]


class PostgresTarget(Target):
    """Compiled text; translation errors surface as :class:`CompileError` from here."""

    engine = POSTGRES

    def __init__(self, compiler: Compiler):
        self.compiler = compiler

    def bootstrap(self) -> list[str]:
        return _as_sql_list(getattr(self.compiler, "BOOTSTRAP_SQL", ""))

    @property
    def checksum_salt(self) -> str:
        """The compiler's version: the views it builds are its output, not the SQL's."""
        return str(getattr(self.compiler, "COMPILER_VERSION", ""))

    def translate(self, text: str) -> list[str]:
        try:
            return _as_sql_list(self.compiler.compile_statement(text))
        except MigrateError:
            raise
        except Exception as exc:  # the compiler's own tree; its message names the construct
            raise CompileError(str(exc)) from exc

    def drop(self, kind: str, name: str) -> list[str]:
        return _as_sql_list(self.compiler.compile_drop(kind, name))


class CompileError(MigrateError):
    """The compiler rejected a statement; the runner adds file and statement number."""


def default_compiler() -> Compiler:
    try:
        return importlib.import_module("pipeline.compiler")
    except ModuleNotFoundError as exc:
        raise MigrateError(
            "PostgreSQL target needs pipeline.compiler, which is not installed"
        ) from exc


def target_for(engine: str, compiler: Compiler | None) -> Target:
    if engine == RISINGWAVE:
        return RisingWaveTarget()
    return PostgresTarget(compiler or default_compiler())
