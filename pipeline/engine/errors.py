"""Errors of the embedded engine.

EngineError
 +-- CatalogError   the gridctl_engine schema is missing or inconsistent (run migrations)
 +-- ReplayError    a replay input line is malformed (message names line and field)
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of the engine's errors."""


class CatalogError(EngineError):
    """The compiled catalog cannot be read; apply the migrations first."""


class ReplayError(EngineError, ValueError):
    """A bad replay input line: ``line`` (1-based) and ``field`` say where."""

    def __init__(self, line: int, field: str, reason: str) -> None:
        self.line = line
        self.field = field
        self.reason = reason
        super().__init__(f"line {line}: {field}: {reason}")
