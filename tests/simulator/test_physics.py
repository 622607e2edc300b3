"""The draw: hardware and car caps, the composite limit, the 6 A floor, pauses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from simulator import physics
from simulator import profiles as prof

T0 = 1_700_000_000.0
SPEC = physics.StationSpec("sim-0001", "zone-01", max_station_kw=22.0, phases=3)


def car(**kw: object) -> physics.EvSession:
    base: dict[str, object] = dict(
        session_id="s",
        arrival=T0,
        capacity_kwh=60.0,
        soc_start=20.0,
        target_kwh=30.0,
        ev_phases=3,
        ev_max_amps=32.0,
        started=True,
    )
    base.update(kw)
    return physics.EvSession(**base)  # type: ignore[arg-type]


def test_no_limit_draws_the_lower_of_hardware_and_car() -> None:
    d = physics.decide(SPEC, car(ev_max_amps=16.0), None)
    assert d.amps == 16.0 and d.watts == pytest.approx(16 * 230 * 3)
    d = physics.decide(SPEC, car(), None)
    assert d.watts == pytest.approx(22000.0)


def test_draw_never_above_the_limit() -> None:
    for limit_w in (4200.0, 5000.0, 7360.0, 11000.0, 21999.0):
        d = physics.decide(SPEC, car(), limit_w / 690.0)
        assert d.watts <= limit_w + 1e-6
        assert d.offered_w == pytest.approx(limit_w)


def test_below_six_amps_pauses_instead_of_drawing_below_the_floor() -> None:
    d = physics.decide(SPEC, car(), 5.9)
    assert d.paused and d.watts == 0.0 and d.offered_w == 0.0
    d = physics.decide(SPEC, car(), 6.0)
    assert not d.paused and d.amps == 6.0


def test_zero_is_a_pause() -> None:
    d = physics.decide(SPEC, car(), 0.0)
    assert d.paused and d.watts == 0.0


def test_dc_has_no_floor() -> None:
    d = physics.decide(SPEC, car(), 3.0, ac=False)
    assert not d.paused and d.amps == 3.0


def test_single_phase_car_on_three_phase_station() -> None:
    d = physics.decide(SPEC, car(ev_phases=1), 4600.0 / 230.0)
    assert d.phases == 1 and d.watts == pytest.approx(4600.0)


def test_taper_above_eighty_percent() -> None:
    s = car(soc_start=90.0)
    assert s.accept_amps() == pytest.approx(16.0)


def test_limit_for_uses_phases_in_use() -> None:
    store = prof.ProfileStore()
    store.install(
        prof.Profile(
            1, 0, "StationMax", "Absolute", "W", (prof.Period(0, 2300.0),), start_schedule=T0
        )
    )
    one_phase = car(ev_phases=1)
    assert physics.limit_for(SPEC, store, one_phase, T0 + 1) == pytest.approx(10.0)
    assert physics.limit_for(SPEC, store, car(), T0 + 1) == pytest.approx(2300.0 / 690.0)


def test_meter_integrates_energy_into_register_and_session() -> None:
    m = physics.Meter(T0, energy_wh=1000.0)
    s = car(target_kwh=1.0)
    m.apply(physics.decide(SPEC, s, None))
    m.advance(T0 + 3600, s)
    # 22 kW for an hour, but the car wanted 1 kWh: it stops there.
    assert s.delivered_wh == pytest.approx(1000.0) and s.done
    assert m.energy_wh == pytest.approx(2000.0)


def test_session_mix_is_deterministic() -> None:
    mix = physics.SessionMix()
    a = mix.new_session(random.Random("x"), "id", T0)
    b = mix.new_session(random.Random("x"), "id", T0)
    assert a == b
    assert a.target_kwh <= a.capacity_kwh * (100 - a.soc_start) / 100 + 1e-9


_profiles = st_.lists(
    st_.builds(
        prof.Profile,
        profile_id=st_.integers(1, 5),
        stack_level=st_.integers(0, 3),
        purpose=st_.sampled_from(["StationMax", "TxDefault", "Tx"]),
        kind=st_.just("Absolute"),
        unit=st_.sampled_from(["W", "A"]),
        periods=st_.tuples(st_.builds(prof.Period, st_.just(0.0), st_.floats(0, 30000))),
        start_schedule=st_.just(T0 - 60),
        valid_to=st_.one_of(st_.none(), st_.floats(T0 - 10, T0 + 10)),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    profiles=_profiles,
    dt=st_.floats(-5, 5),
    station_phases=st_.sampled_from([1, 3]),
    ev_phases=st_.sampled_from([1, 3]),
    ev_amps=st_.floats(6, 63),
)
def test_draw_never_exceeds_any_applicable_limit(
    profiles: list[prof.Profile], dt: float, station_phases: int, ev_phases: int, ev_amps: float
) -> None:
    spec = physics.StationSpec("s", "z", max_station_kw=22.0, phases=station_phases)
    store = prof.ProfileStore()
    for p in profiles:
        store.install(p)
    session = car(ev_phases=ev_phases, ev_max_amps=ev_amps, tx_id="7")
    t = T0 + dt
    draw = physics.decide(spec, session, physics.limit_for(spec, store, session, t))
    phases = min(station_phases, ev_phases)
    assert draw.watts <= spec.max_station_kw * 1000 * phases / station_phases + 1e-6
    winners = prof.composite(store.profiles, t, transaction_id="7", tx_start=T0)
    for p in winners.values():
        limit = p.limit_at(t, T0)
        assert limit is not None
        cap_w = limit if p.unit == "W" else limit * spec.voltage_v * phases
        assert draw.watts <= cap_w + 1e-6
    assert draw.watts == 0 or draw.amps >= physics.AC_FLOOR_AMPS - 1e-9
