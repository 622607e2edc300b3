"""The exception tree of ``pipeline.migrate``.

::

    MigrateError                  any failure of discovery, validation, lint or apply
    ├── NamingError               a .sql file named neither V<ver>__desc.sql nor R__desc.sql
    ├── VariableError             a ``${var}`` has no value (names file and variable)
    ├── ValidationError           a statement does not parse or compile (names file and statement)
    ├── ChecksumError             an applied file was edited (names each file)
    ├── DependencyError           an R rebuild cannot be ordered or reaches a V object
    ├── OrderError                a new V file's version is below one already applied
    └── StatementError            the server rejected a statement (file, number, first line, error)

Everything a caller sees is one of these; psycopg and sqlglot errors are translated at the edge
(``raise ... from exc``), so the CLI prints ``str(exc)`` and exits non-zero.
"""

from __future__ import annotations


class MigrateError(Exception):
    """Root of every error raised by the migration runner and linter."""


class NamingError(MigrateError, ValueError):
    """A ``.sql`` file whose name is neither ``V<version>__<desc>.sql`` nor ``R__<desc>.sql``."""


class VariableError(MigrateError, KeyError):
    """A ``${name}`` placeholder has neither a ``--var`` nor a default in ``vars.defaults``."""

    def __init__(self, script: str, name: str, line: int | None = None):
        self.script = script
        self.name = name
        self.line = line
        where = f"{script}:{line}" if line else script
        super().__init__(f"{where}: variable ${{{name}}} has no value (pass --var {name}=...)")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ValidationError(MigrateError):
    """A statement fails to parse (sqlglot, RisingWave dialect) or to compile for PostgreSQL."""


class ChecksumError(MigrateError):
    """Applied files were edited since; ``scripts`` names each of them."""

    def __init__(self, message: str, scripts: list[str]):
        self.scripts = scripts
        super().__init__(message)


class DependencyError(MigrateError):
    """The objects to rebuild form a cycle or include objects defined by versioned files."""


class OrderError(MigrateError):
    """A pending versioned file sorts before an applied one (Flyway: out of order)."""


class StatementError(MigrateError):
    """The server rejected a statement; the history records the progress made before it."""

    def __init__(self, script: str, number: int, first_line: str, server_error: str):
        self.script = script
        self.number = number
        self.first_line = first_line
        self.server_error = server_error
        super().__init__(f"{script}: statement {number} failed ({first_line!r}): {server_error}")
