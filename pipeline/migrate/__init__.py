"""Migrations for the control pipeline: Flyway-style files, history, runner and linter.

Callers need four names: :func:`apply` (bring a database up to date; returns the engine),
:class:`Migrator` (``up``, ``plan``, ``status``, ``verify``), :func:`lint_dir` and
:class:`MigrateError`, the root of every error raised here.
"""

from pipeline.migrate.errors import (
    ChecksumError,
    DependencyError,
    MigrateError,
    NamingError,
    OrderError,
    StatementError,
    ValidationError,
    VariableError,
)
from pipeline.migrate.lint import RULES, Finding, lint_dir, lint_text
from pipeline.migrate.runner import FileStatus, Migrator, apply

__all__ = [
    "RULES",
    "ChecksumError",
    "DependencyError",
    "FileStatus",
    "Finding",
    "MigrateError",
    "Migrator",
    "NamingError",
    "OrderError",
    "StatementError",
    "ValidationError",
    "VariableError",
    "apply",
    "lint_dir",
    "lint_text",
]
