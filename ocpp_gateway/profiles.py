"""What SetChargingProfile payloads of every OCPP version share (pure, no I/O).

A limit from the pipeline becomes a *self-expiring* profile: Absolute, ``startSchedule`` a
minute in the past (chargers' clocks drift), ``duration`` up to the event end and
``validTo = dr_end_ts``, so the charger drops the limit by itself even if gridctl is down
when the event ends. The profile id is derived from the station id, so every gateway
instance (and every restart) addresses the same profile and can replace or clear it.
The stack level follows the priority: an emergency (1) stacks above an economic (2).

Payloads are wire payloads (camelCase), validated and serialised once by the protocol;
each version package's ``profiles`` module wraps these parts in its own envelope.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.contracts import SetChargingProfileCommand, StationZone

__all__ = [
    "UNKNOWN",
    "Capabilities",
    "limit_value",
    "parse_units",
    "profile_body",
    "profile_id",
    "schedule",
    "stack_level",
    "ts",
]


def profile_id(station_id: str) -> int:
    """A stable positive id (1..2**31-1) from the station id: same on every instance."""
    return zlib.crc32(station_id.encode()) % (2**31 - 1) + 1


def stack_level(priority: int) -> int:
    """Priority 1 (emergency) -> 3, 2 -> 2, 3 -> 1; above operator baselines at level 0."""
    return max(1, 4 - priority)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a charger said it accepts (1.6 GetConfiguration / 2.0.1 GetVariables).

    ``units`` is the set of rate units it allows (``{"A", "W"}`` when unknown);
    ``max_stack_level`` caps our stack level (None when unknown).
    """

    units: frozenset[str] = frozenset({"A", "W"})
    max_stack_level: int | None = None


UNKNOWN = Capabilities()


def parse_units(value: str) -> frozenset[str]:
    """``"Current,Power"`` (1.6) or ``"A,W"`` (2.0.1) -> ``{"A", "W"}``; unknown -> both."""
    names = {"current": "A", "a": "A", "power": "W", "w": "W"}
    units = frozenset(names[p] for p in value.replace(" ", "").lower().split(",") if p in names)
    return units or UNKNOWN.units


def limit_value(
    target_kw: float, zone: StationZone | None, caps: Capabilities = UNKNOWN
) -> tuple[str, float, int]:
    """(charging rate unit, limit, phases) for a station.

    The zone's unit unless the charger said it does not take it. ``W`` is total power;
    ``A`` is per phase, converted with nominal voltage and phases (3 x 230 V when the
    station has no zone). Rounded *down* to one decimal (1.6 allows one decimal place),
    so that the charger never gets a limit above the target.
    """
    phases = zone.phases if zone else 3
    voltage = zone.voltage_v if zone else 230.0
    unit = zone.charging_rate_unit if zone else "W"
    if unit not in caps.units:
        unit = "A" if unit == "W" else "W"
    if unit == "A":
        amps = target_kw * 1000.0 / (phases * voltage)
        return "A", math.floor(amps * 10 + 1e-9) / 10, phases
    return "W", math.floor(target_kw * 1000.0 * 10 + 1e-9) / 10, phases


def schedule(
    cmd: SetChargingProfileCommand,
    zone: StationZone | None,
    now: datetime,
    start_offset_s: int,
    caps: Capabilities,
) -> dict[str, Any]:
    """The ``chargingSchedule`` both versions share (camelCase, as sent)."""
    start = (now - timedelta(seconds=start_offset_s)).replace(microsecond=0)
    duration = max(1, math.ceil((cmd.dr_end_ts - start).total_seconds()))
    unit, limit, phases = limit_value(cmd.target_power_kw, zone, caps)
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if phases != 3:
        period["numberPhases"] = phases  # 3 is the default in both versions
    return {
        "startSchedule": ts(start),
        "duration": duration,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [period],
    }


def ts(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, as chargers parse most reliably."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def profile_body(
    cmd: SetChargingProfileCommand, purpose: str, start: str, caps: Capabilities
) -> dict[str, Any]:
    """The fields of a ``chargingProfile`` both versions share: a self-expiring limit."""
    level = stack_level(cmd.priority)
    if caps.max_stack_level is not None:
        level = max(0, min(level, caps.max_stack_level))
    return {
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "validFrom": start,
        "validTo": ts(cmd.dr_end_ts),
    }
