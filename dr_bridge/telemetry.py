"""Measured load of zones, read from the engine's views: what the VENs report to a utility.

The bridge never measures anything itself: the engine already knows each zone's load
(``zone_load``, the latest fresh sample of every connector) and its history per minute
(``zone_load_minute``). Both are plain views over the Postgres wire, so this reads the
same on the embedded engine and on RisingWave. :class:`ZoneLoadReader` is the interface
the VENs take; :class:`PgZoneLoad` is the one ``gridctl run`` wires.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Measured:
    """A zone's load over a window: average kW, energy in kWh, and minutes with data."""

    avg_kw: float
    kwh: float
    minutes: int


class ZoneLoadReader(Protocol):
    async def load_now(self, zones: Iterable[str]) -> dict[str, float]:
        """kW per zone now (zones without fresh samples: 0.0; unknown zones: absent)."""
        ...

    async def window(self, zone: str, start: datetime, end: datetime) -> Measured | None:
        """The zone's load over ``[start, end)``; None when no minute has data."""
        ...


_NOW = "SELECT zone_id, load_kw::DOUBLE PRECISION FROM zone_load WHERE zone_id = ANY(%s)"

# Each minute's average, weighted by the part of the minute inside the window, so a
# window that does not start on a minute boundary counts only what it covers.
_WINDOW = """
SELECT SUM(load_kw * covered) / 3600.0 AS kwh, SUM(covered) AS seconds, COUNT(*) AS minutes
FROM (
    SELECT
        load_kw,
        EXTRACT(EPOCH FROM (LEAST(window_end, %(end)s) - GREATEST(window_start, %(start)s)))
            AS covered
    FROM zone_load_minute
    WHERE zone_id = %(zone)s
        AND window_end > %(start)s
        AND window_start < %(end)s
) AS minutes
"""


class PgZoneLoad:
    """Reads the views over one short-lived connection per call (reports are rare)."""

    def __init__(self, database_url: str) -> None:
        self._dsn = database_url

    async def load_now(self, zones: Iterable[str]) -> dict[str, float]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, prepare_threshold=None
        ) as conn:
            cur = await conn.execute(_NOW, (list(zones),))
            return {str(z): float(kw or 0.0) for z, kw in await cur.fetchall()}

    async def window(self, zone: str, start: datetime, end: datetime) -> Measured | None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, prepare_threshold=None
        ) as conn:
            cur = await conn.execute(_WINDOW, {"zone": zone, "start": start, "end": end})
            row = await cur.fetchone()
        if row is None or not row[2] or not row[1]:
            return None
        kwh, seconds, minutes = float(row[0]), float(row[1]), int(row[2])
        return Measured(avg_kw=kwh * 3600.0 / seconds, kwh=kwh, minutes=minutes)
