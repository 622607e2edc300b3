"""What the pipeline says of each active signal, and what the bridge can tell at once.

The engine writes the state of every signal in force to ``pipeline.dr_signal_states``
(enforced / waiting_for_load / infeasible / no_stations; a tombstone once it is over);
:class:`SignalStates` follows that topic so the API can answer ``GET /v1/signals/{id}``
with it. :func:`floor_warnings` is the check the API can make before the engine has
evaluated anything: a zone limit below the floors the pipeline holds the zone's stations
at (their minimum current, 0 for an idle station: docs/control-law.md) cannot be met, and
the 201 says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dr_bridge.follow import TopicFollower
from pipeline import topics
from pipeline.bus import Record
from pipeline.contracts import (
    ContractError,
    DemandResponseSignal,
    DrSignalState,
    StationZone,
    decode,
)

log = logging.getLogger(__name__)

#: the smallest current a charging session follows (IEC 61851), per phase; the
#: pipeline's ``min_current_a`` default
MIN_CURRENT_A = 6.0
_STEP_KW = 0.1


class SignalStates(TopicFollower):
    """signal id -> its latest state record from the pipeline."""

    topic = topics.DR_SIGNAL_STATES
    name = "dr-signal-states"

    def __init__(self, bus: object) -> None:
        super().__init__(bus)  # type: ignore[arg-type]
        self._states: dict[str, DrSignalState] = {}

    def _apply_records(self, records: list[Record]) -> None:
        for record in records:
            if record.value is None:
                self._states.pop(record.key or "", None)
                continue
            try:
                state = decode(DrSignalState, record.value, topic=self.topic)
            except ContractError as exc:
                log.warning("ignoring bad state record %s: %s", record.key, exc)
                continue
            self._states[state.signal_id] = state

    def get(self, signal_id: str) -> DrSignalState | None:
        return self._states.get(signal_id)


def station_min_kw(station: StationZone) -> float:
    """A station's smallest non-zero limit: 6 A per phase or min_active_kw, whichever is
    larger, rounded up to 0.1 kW, never above its ceiling (as the pipeline computes it)."""
    ceiling = min(station.max_station_kw, station.contract_max_kw)
    raw = max(station.min_active_kw, MIN_CURRENT_A * station.phases * station.voltage_v / 1000)
    return min(ceiling, math.ceil(raw / _STEP_KW - 1e-6) * _STEP_KW)


@dataclass(frozen=True, slots=True)
class ZoneFloors:
    """What a CURTAIL signal would hold a zone's stations at now, as the pipeline computes
    it (``sql/zone_floors.sql`` over ``station_curtail_floors``): idle stations hold 0."""

    stations: int
    floors_kw: float
    charging: int
    no_fresh_load: int
    plugged: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ZoneFloors:
        return cls(
            stations=int(row["stations"]),
            floors_kw=float(row["floors_kw"] or 0.0),
            charging=int(row["charging"] or 0),
            no_fresh_load=int(row["no_fresh_load"] or 0),
            plugged=int(row["plugged"] or 0),
        )


def floor_warnings(
    signal: DemandResponseSignal,
    stations: Iterable[StationZone],
    held: dict[str, ZoneFloors] | None = None,
) -> list[str]:
    """Warnings the API can give at once: a CURTAIL zone limit below the floors.

    ``held``: the floors the pipeline holds now per zone (None: the engine's views are not
    available). Without them the bridge knows nothing of the stations' vehicles and counts
    every station's minimum, which is what the pipeline holds too while no status of a
    station is known; the warning says that it may overstate.
    """
    if signal.signal_type != "CURTAIL" or signal.zone_limit_kw is None:
        return []
    limit = signal.zone_limit_kw
    if held is not None:
        zone = held.get(signal.zone_id)
        if zone is None:  # no station in the zone: the pipeline says no_stations
            return []
        shortfall = round(zone.floors_kw - limit, 3)
        if shortfall <= 0:
            return []
        return [
            f"infeasible: {zone.charging + zone.no_fresh_load + zone.plugged} of the zone's "
            f"{zone.stations} stations are held at their minimum current ({zone.charging} "
            f"charging, {zone.plugged} with a vehicle plugged in, {zone.no_fresh_load} "
            f"without fresh load or status), {zone.floors_kw:.1f} kW, {shortfall:.1f} kW "
            f"above the {limit:g} kW limit; sessions are kept at their minimum and the cap "
            "is exceeded by up to that much"
        ]
    floors = sum(station_min_kw(s) for s in stations if s.zone_id == signal.zone_id)
    shortfall = round(floors - limit, 3)
    if shortfall <= 0:
        return []
    return [
        f"infeasible: the zone's charging sessions need {floors:.1f} kW at their minimum "
        f"current, {shortfall:.1f} kW above the {limit:g} kW limit; "
        "sessions are kept at their minimum and the cap is exceeded by up to that much "
        "(every station counted: the engine's views are not available to tell idle ones)"
    ]
