"""OCPP 1.6 SetChargingProfile / ClearChargingProfile payloads (pure, camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp_gateway.profiles import Capabilities, profile_body, profile_id, schedule
from pipeline.contracts import SetChargingProfileCommand, StationZone

__all__ = ["PURPOSES", "clear_profile", "set_profile"]

#: ChargePointMaxProfile caps all connectors together (connector 0 only); many chargers
#: refuse it, and TxDefaultProfile on connector 0 is the default of every connector
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile")


def set_profile(
    cmd: SetChargingProfileCommand,
    zone: StationZone | None,
    purpose: str,
    now: datetime,
    start_offset_s: int,
    caps: Capabilities,
) -> dict[str, Any]:
    """SetChargingProfile on connector 0 with our profile id for the station."""
    sched = schedule(cmd, zone, now, start_offset_s, caps)
    profile = profile_body(cmd, purpose, sched["startSchedule"], caps)
    profile["chargingProfileId"] = profile_id(cmd.station_id)
    profile["chargingSchedule"] = sched
    return {"connectorId": 0, "csChargingProfiles": profile}


def clear_profile(station_id: str) -> dict[str, Any]:
    """ClearChargingProfile of our profile (by id: operators' own profiles stay)."""
    return {"id": profile_id(station_id)}
