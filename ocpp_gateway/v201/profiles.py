"""OCPP 2.0.1 SetChargingProfile / ClearChargingProfile payloads (pure, camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp_gateway.profiles import Capabilities, profile_body, profile_id, schedule
from pipeline.contracts import SetChargingProfileCommand, StationZone

__all__ = ["PURPOSES", "clear_profile", "set_profile"]

#: ChargingStationMaxProfile on EVSE 0 (never Relative); TxDefaultProfile as fallback.
#: ChargingStationExternalConstraints is not ours to set.
PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile")


def set_profile(
    cmd: SetChargingProfileCommand,
    zone: StationZone | None,
    purpose: str,
    now: datetime,
    start_offset_s: int,
    caps: Capabilities,
) -> dict[str, Any]:
    """SetChargingProfile on EVSE 0; ``chargingSchedule`` is a list in 2.0.1."""
    pid = profile_id(cmd.station_id)
    sched = schedule(cmd, zone, now, start_offset_s, caps)
    profile = profile_body(cmd, purpose, sched["startSchedule"], caps)
    profile["id"] = pid
    profile["chargingSchedule"] = [{"id": pid, **sched}]
    return {"evseId": 0, "chargingProfile": profile}


def clear_profile(station_id: str) -> dict[str, Any]:
    """ClearChargingProfile of our profile (by id: operators' own profiles stay)."""
    return {"chargingProfileId": profile_id(station_id)}
