"""SetChargingProfile payloads per OCPP version (pure, no I/O).

A limit from the pipeline becomes a *self-expiring* profile: Absolute, ``startSchedule`` a
minute in the past (chargers' clocks drift), ``duration`` up to the event end and
``validTo = dr_end_ts``, so the charger drops the limit by itself even if gridctl is down
when the event ends. The profile id is derived from the station id, so every gateway
instance (and every restart) addresses the same profile and can replace or clear it.
The stack level follows the priority: an emergency (1) stacks above an economic (2).

Payloads are the snake_case keyword arguments of the ocpp library's ``call`` classes.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.contracts import SetChargingProfileCommand, StationZone

__all__ = [
    "MAX_PURPOSES",
    "UNKNOWN",
    "Capabilities",
    "clear_kwargs",
    "limit_value",
    "parse_units",
    "profile_id",
    "set_profile_kwargs",
    "stack_level",
]

#: purposes to try in order: the station-wide cap first, TxDefaultProfile as fallback
MAX_PURPOSES = {
    "1.6": ("ChargePointMaxProfile", "TxDefaultProfile"),
    "2.0.1": ("ChargingStationMaxProfile", "TxDefaultProfile"),
}


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


def _schedule(
    cmd: SetChargingProfileCommand,
    zone: StationZone | None,
    now: datetime,
    start_offset_s: int,
    caps: Capabilities,
) -> dict[str, Any]:
    start = (now - timedelta(seconds=start_offset_s)).replace(microsecond=0)
    duration = max(1, math.ceil((cmd.dr_end_ts - start).total_seconds()))
    unit, limit, phases = limit_value(cmd.target_power_kw, zone, caps)
    period: dict[str, Any] = {"start_period": 0, "limit": limit}
    if phases != 3:
        period["number_phases"] = phases  # 3 is the default in both versions
    return {
        "start_schedule": _ts(start),
        "duration": duration,
        "charging_rate_unit": unit,
        "charging_schedule_period": [period],
    }


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def set_profile_kwargs(
    version: str,
    cmd: SetChargingProfileCommand,
    zone: StationZone | None,
    purpose: str,
    *,
    now: datetime | None = None,
    start_offset_s: int = 60,
    caps: Capabilities = UNKNOWN,
) -> dict[str, Any]:
    """Keyword arguments of ``call.SetChargingProfile`` for ``version`` and ``purpose``."""
    now = now or datetime.now(UTC)
    pid = profile_id(cmd.station_id)
    schedule = _schedule(cmd, zone, now, start_offset_s, caps)
    level = stack_level(cmd.priority)
    if caps.max_stack_level is not None:
        level = max(0, min(level, caps.max_stack_level))
    profile: dict[str, Any] = {
        "stack_level": level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "valid_from": schedule["start_schedule"],
        "valid_to": _ts(cmd.dr_end_ts),
    }
    if version == "1.6":
        profile["charging_profile_id"] = pid
        profile["charging_schedule"] = schedule
        return {"connector_id": 0, "cs_charging_profiles": profile}
    profile["id"] = pid
    profile["charging_schedule"] = [{"id": pid, **schedule}]
    return {"evse_id": 0, "charging_profile": profile}


def clear_kwargs(version: str, station_id: str) -> dict[str, Any]:
    """Keyword arguments of ``call.ClearChargingProfile`` for our profile of a station."""
    pid = profile_id(station_id)
    return {"id": pid} if version == "1.6" else {"charging_profile_id": pid}
