"""Profile payloads per version: units, rounding, ids, stack levels, self-expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ocpp_gateway import profiles
from ocpp_gateway.v16 import DIALECT as V16
from ocpp_gateway.v16 import profiles as p16
from ocpp_gateway.v201 import DIALECT as V201
from ocpp_gateway.v201 import profiles as p201
from pipeline.contracts import SetChargingProfileCommand, StationZone

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def cmd(kw: float = 11.0, priority: int = 2, station: str = "CP-1") -> SetChargingProfileCommand:
    return SetChargingProfileCommand(
        station_id=station,
        target_power_kw=kw,
        signal_id="s",
        priority=priority,
        dr_end_ts=NOW + timedelta(hours=1),
        command_ts=NOW,
    )


def zone(unit: str = "W", phases: int = 3, voltage: float = 230.0) -> StationZone:
    return StationZone(
        station_id="CP-1",
        zone_id="z",
        max_station_kw=22,
        contract_max_kw=22,
        charging_rate_unit=unit,  # type: ignore[arg-type]
        phases=phases,  # type: ignore[arg-type]
        voltage_v=voltage,
    )


def test_v16_payload_is_a_self_expiring_absolute_profile() -> None:
    kw = p16.set_profile(cmd(), None, "ChargePointMaxProfile", NOW, 60, profiles.UNKNOWN)
    assert kw["connectorId"] == 0
    p = kw["csChargingProfiles"]
    assert p["chargingProfileId"] == profiles.profile_id("CP-1")
    assert p["chargingProfilePurpose"] == "ChargePointMaxProfile"
    assert p["chargingProfileKind"] == "Absolute"
    assert p["stackLevel"] == 2
    assert p["validTo"] == "2026-11-24T13:00:00Z"
    s = p["chargingSchedule"]
    assert s["startSchedule"] == "2026-11-24T11:59:00Z"
    assert s["duration"] == 3660
    assert s["chargingRateUnit"] == "W"
    assert s["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 11000.0}]


def test_v201_payload_uses_evse_0_and_a_schedule_list() -> None:
    kw = p201.set_profile(cmd(priority=1), None, "TxDefaultProfile", NOW, 60, profiles.UNKNOWN)
    assert kw["evseId"] == 0
    p = kw["chargingProfile"]
    assert p["id"] == profiles.profile_id("CP-1") and p["stackLevel"] == 3
    (schedule,) = p["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W" and schedule["duration"] == 3660


@pytest.mark.parametrize(
    ("kw", "zone_", "expected"),
    [
        (11.0, zone("A", 3, 230.0), ("A", 15.9, 3)),  # 15.94 A rounds down
        (3.7, zone("A", 1, 230.0), ("A", 16.0, 1)),  # 16.08 A
        (7.36, zone("W"), ("W", 7360.0, 3)),
        (0.0, zone("A"), ("A", 0.0, 3)),
        (1.23456, None, ("W", 1234.5, 3)),
    ],
)
def test_limit_units_and_rounding(kw: float, zone_: StationZone | None, expected: tuple) -> None:
    assert profiles.limit_value(kw, zone_) == expected


def test_single_phase_sets_number_phases() -> None:
    kw = p16.set_profile(cmd(3.7), zone("A", 1), "TxDefaultProfile", NOW, 60, profiles.UNKNOWN)
    period = kw["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert period == {"startPeriod": 0, "limit": 16.0, "numberPhases": 1}


def test_ids_are_stable_and_stack_follows_priority() -> None:
    assert profiles.profile_id("CP-1") == profiles.profile_id("CP-1")
    assert profiles.profile_id("CP-1") != profiles.profile_id("CP-2")
    assert 1 <= profiles.profile_id("x" * 48) < 2**31
    assert [profiles.stack_level(p) for p in (1, 2, 3)] == [3, 2, 1]
    assert p16.clear_profile("CP-1") == {"id": profiles.profile_id("CP-1")}
    assert p201.clear_profile("CP-1") == {"chargingProfileId": profiles.profile_id("CP-1")}


def test_capabilities_override_unit_and_cap_stack() -> None:
    caps = profiles.Capabilities(units=profiles.parse_units("Current"), max_stack_level=1)
    kw = p16.set_profile(cmd(11.0, priority=1), None, "TxDefaultProfile", NOW, 60, caps)
    p = kw["csChargingProfiles"]
    assert p["stackLevel"] == 1
    assert p["chargingSchedule"]["chargingRateUnit"] == "A"
    assert profiles.parse_units("A,W") == {"A", "W"} == profiles.parse_units("bogus")
    assert profiles.parse_units("Power") == {"W"}
    assert profiles.limit_value(7.0, zone("A"), profiles.Capabilities(frozenset({"W"}))) == (
        "W", 7000.0, 3,
    )  # fmt: skip


@pytest.mark.parametrize("priority", [1, 2, 3])
@pytest.mark.parametrize("zone_", [None, zone("A", 1), zone("W")])
def test_every_payload_we_build_passes_the_versions_schema(priority, zone_) -> None:
    for dialect in (V16, V201):
        for purpose in dialect.purposes:
            payload = dialect.set_profile(
                cmd(7.4, priority), zone_, purpose, NOW, 60, profiles.UNKNOWN
            )
            dialect.schemas.validate("SetChargingProfile", payload)
        dialect.schemas.validate("ClearChargingProfile", dialect.clear_profile("CP-1"))
        dialect.schemas.validate(*dialect.capability_query)
