"""Composite limits: purposes, stack levels, units, validity windows, schedules."""

from __future__ import annotations

import pytest

from simulator import profiles as prof
from simulator.errors import ProfileError

T0 = 1_700_000_000.0


def mk(
    pid: int = 1,
    level: int = 0,
    purpose: prof.Purpose = "StationMax",
    limit: float = 5000.0,
    unit: prof.Unit = "W",
    **kw: object,
) -> prof.Profile:
    periods = kw.pop("periods", (prof.Period(0, limit),))
    return prof.Profile(
        profile_id=pid,
        stack_level=level,
        purpose=purpose,
        kind=kw.pop("kind", "Absolute"),  # type: ignore[arg-type]
        unit=unit,
        periods=periods,  # type: ignore[arg-type]
        start_schedule=kw.pop("start_schedule", T0 - 60),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def amps(profiles: list[prof.Profile], t: float = T0, **kw: object) -> float | None:
    return prof.limit_amps(profiles, t, voltage=230.0, phases=3, **kw)  # type: ignore[arg-type]


def test_no_profile_no_limit() -> None:
    assert amps([]) is None


def test_watts_convert_to_amps_per_phase() -> None:
    assert amps([mk(limit=6900.0)]) == pytest.approx(10.0)


def test_amps_stay_amps() -> None:
    assert amps([mk(limit=13.0, unit="A")]) == 13.0


def test_highest_stack_level_wins_within_a_purpose_even_if_higher() -> None:
    low = mk(pid=1, level=0, limit=3000.0)
    high = mk(pid=2, level=5, limit=9000.0)
    assert amps([low, high]) == pytest.approx(9000.0 / 690.0)


def test_minimum_across_purposes() -> None:
    station = mk(pid=1, purpose="StationMax", limit=11000.0)
    default = mk(pid=2, purpose="TxDefault", limit=8.0, unit="A")
    assert amps([station, default]) == 8.0
    tighter_station = mk(pid=3, purpose="StationMax", level=1, limit=4140.0)
    assert amps([station, default, tighter_station]) == pytest.approx(6.0)


def test_tx_profile_replaces_tx_default_only_in_its_transaction() -> None:
    default = mk(pid=1, purpose="TxDefault", limit=8.0, unit="A")
    tx = mk(pid=2, purpose="Tx", limit=20.0, unit="A", transaction_id="42")
    assert amps([default, tx]) == 8.0  # no transaction running: TxProfile does not apply
    assert amps([default, tx], transaction_id="42") == 20.0
    assert amps([default, tx], transaction_id="43") == 8.0


def test_valid_to_lapses_and_valid_from_starts() -> None:
    p = mk(valid_from=T0, valid_to=T0 + 600)
    assert amps([p], T0 - 1) is None
    assert amps([p], T0) is not None
    assert amps([p], T0 + 599.9) is not None
    assert amps([p], T0 + 600) is None


def test_lapsed_higher_level_falls_back_to_lower() -> None:
    base = mk(pid=1, level=0, limit=6900.0)
    event = mk(pid=2, level=3, limit=0.0, valid_to=T0 + 60)
    assert amps([base, event], T0) == 0.0
    assert amps([base, event], T0 + 61) == pytest.approx(10.0)


def test_schedule_periods_and_duration() -> None:
    p = mk(
        periods=(prof.Period(0, 10.0), prof.Period(120, 20.0)),
        unit="A",
        start_schedule=T0,
        duration=300,
    )
    assert amps([p], T0 + 10) == 10.0
    assert amps([p], T0 + 130) == 20.0
    assert amps([p], T0 + 300) is None
    assert amps([p], T0 - 5) is None


def test_relative_profile_starts_with_the_transaction() -> None:
    p = mk(
        kind="Relative",
        periods=(prof.Period(0, 6.0), prof.Period(60, 16.0)),
        unit="A",
        start_schedule=None,
    )
    assert amps([p], T0 + 30, tx_start=T0) == 6.0
    assert amps([p], T0 + 90, tx_start=T0) == 16.0


def test_daily_recurring_profile_repeats() -> None:
    p = mk(
        kind="Recurring", recurrency="Daily", start_schedule=T0, duration=3600, unit="A", limit=7.0
    )
    assert amps([p], T0 + 86400 + 10) == 7.0
    assert amps([p], T0 + 86400 + 4000) is None


def test_breakpoints_include_valid_to_and_period_starts() -> None:
    p = mk(
        periods=(prof.Period(0, 10.0), prof.Period(120, 20.0)), start_schedule=T0, valid_to=T0 + 200
    )
    assert p.breakpoints(T0, T0 + 1000, None) == [T0 + 200, T0 + 120]


def test_store_replaces_same_id_and_same_purpose_level() -> None:
    store = prof.ProfileStore()
    store.install(mk(pid=1, level=1, limit=1000.0))
    store.install(mk(pid=1, level=2, limit=2000.0))
    assert [p.stack_level for p in store.profiles] == [2]
    store.install(mk(pid=7, level=2, limit=3000.0))
    assert [p.profile_id for p in store.profiles] == [7]
    store.install(mk(pid=8, level=2, purpose="TxDefault"))
    assert store.clear(purpose="TxDefault") == 1
    assert store.clear(profile_id=99) == 0
    assert store.clear() == 1
    assert store.profiles == []


def test_store_prunes_expired() -> None:
    store = prof.ProfileStore()
    store.install(mk(pid=1, valid_to=T0 + 1))
    store.install(mk(pid=2, level=1))
    store.prune(T0 + 2)
    assert [p.profile_id for p in store.profiles] == [2]


def test_parse_16_and_201_agree() -> None:
    p16 = prof.parse_16(
        {
            "charging_profile_id": 5,
            "stack_level": 2,
            "charging_profile_purpose": "ChargePointMaxProfile",
            "charging_profile_kind": "Absolute",
            "valid_to": "2023-11-14T22:13:20Z",
            "charging_schedule": {
                "charging_rate_unit": "W",
                "start_schedule": "2023-11-14T22:00:00+00:00",
                "charging_schedule_period": [{"start_period": 0, "limit": 4200.0}],
            },
        },
        0,
        T0,
    )
    p201 = prof.parse_201(
        {
            "id": 5,
            "stack_level": 2,
            "charging_profile_purpose": "ChargingStationMaxProfile",
            "charging_profile_kind": "Absolute",
            "valid_to": "2023-11-14T22:13:20Z",
            "charging_schedule": [
                {
                    "id": 1,
                    "charging_rate_unit": "W",
                    "start_schedule": "2023-11-14T22:00:00+00:00",
                    "charging_schedule_period": [{"start_period": 0, "limit": 4200.0}],
                }
            ],
        },
        0,
        T0,
    )
    assert p16 == p201
    assert p16.purpose == "StationMax" and p16.valid_to == T0


@pytest.mark.parametrize(
    "periods",
    [[], [{"start_period": 5, "limit": 1.0}], [{"start_period": 0, "limit": -1.0}]],
)
def test_bad_schedules_are_refused(periods: list[dict[str, float]]) -> None:
    raw = {
        "charging_profile_id": 1,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": periods},
    }
    with pytest.raises(ProfileError):
        prof.parse_16(raw, 0, T0)
