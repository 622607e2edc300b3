"""The gateway's wall clock, in one place so every module stamps time alike."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["now_utc"]


def now_utc() -> datetime:
    """Now, timezone-aware UTC (what every topic record carries)."""
    return datetime.now(UTC)
