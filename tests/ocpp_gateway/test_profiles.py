"""Profile payloads per version: units, rounding, ids, stack levels, self-expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ocpp_gateway import profiles
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
    kw = profiles.set_profile_kwargs("1.6", cmd(), None, "ChargePointMaxProfile", now=NOW)
    assert kw["connector_id"] == 0
    p = kw["cs_charging_profiles"]
    assert p["charging_profile_id"] == profiles.profile_id("CP-1")
    assert p["charging_profile_purpose"] == "ChargePointMaxProfile"
    assert p["charging_profile_kind"] == "Absolute"
    assert p["stack_level"] == 2
    assert p["valid_to"] == "2026-11-24T13:00:00Z"
    s = p["charging_schedule"]
    assert s["start_schedule"] == "2026-11-24T11:59:00Z"
    assert s["duration"] == 3660
    assert s["charging_rate_unit"] == "W"
    assert s["charging_schedule_period"] == [{"start_period": 0, "limit": 11000.0}]


def test_v201_payload_uses_evse_0_and_a_schedule_list() -> None:
    kw = profiles.set_profile_kwargs("2.0.1", cmd(priority=1), None, "TxDefaultProfile", now=NOW)
    assert kw["evse_id"] == 0
    p = kw["charging_profile"]
    assert p["id"] == profiles.profile_id("CP-1") and p["stack_level"] == 3
    (schedule,) = p["charging_schedule"]
    assert schedule["charging_rate_unit"] == "W" and schedule["duration"] == 3660


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
    kw = profiles.set_profile_kwargs("1.6", cmd(3.7), zone("A", 1), "TxDefaultProfile", now=NOW)
    period = kw["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]
    assert period == {"start_period": 0, "limit": 16.0, "number_phases": 1}


def test_ids_are_stable_and_stack_follows_priority() -> None:
    assert profiles.profile_id("CP-1") == profiles.profile_id("CP-1")
    assert profiles.profile_id("CP-1") != profiles.profile_id("CP-2")
    assert 1 <= profiles.profile_id("x" * 48) < 2**31
    assert [profiles.stack_level(p) for p in (1, 2, 3)] == [3, 2, 1]
    assert profiles.clear_kwargs("1.6", "CP-1") == {"id": profiles.profile_id("CP-1")}
    assert profiles.clear_kwargs("2.0.1", "CP-1") == {
        "charging_profile_id": profiles.profile_id("CP-1")
    }


def test_capabilities_override_unit_and_cap_stack() -> None:
    caps = profiles.Capabilities(units=profiles.parse_units("Current"), max_stack_level=1)
    kw = profiles.set_profile_kwargs("1.6", cmd(11.0, priority=1), None, "TxDefaultProfile",
                                     now=NOW, caps=caps)  # fmt: skip
    p = kw["cs_charging_profiles"]
    assert p["stack_level"] == 1
    assert p["charging_schedule"]["charging_rate_unit"] == "A"
    assert profiles.parse_units("A,W") == {"A", "W"} == profiles.parse_units("bogus")
    assert profiles.parse_units("Power") == {"W"}
    assert profiles.limit_value(7.0, zone("A"), profiles.Capabilities(frozenset({"W"}))) == (
        "W", 7000.0, 3,
    )  # fmt: skip
