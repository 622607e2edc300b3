"""The fleet's observations: exact percentiles over a bounded window, listeners, reset."""

from __future__ import annotations

from simulator.observe import LatencyReservoir, Observations, ProfileEvent


def test_percentiles_are_nearest_rank() -> None:
    r = LatencyReservoir()
    assert r.percentile(50) is None
    for ms in range(1, 101):
        r.add(float(ms))
    assert (r.percentile(50), r.percentile(99), r.percentile(100)) == (50.0, 99.0, 100.0)


def test_reservoir_keeps_only_the_latest_window() -> None:
    r = LatencyReservoir(size=10)
    for ms in range(100):
        r.add(float(ms))
    assert len(r) == 10 and r.percentile(0.1) == 90.0 and r.percentile(100) == 99.0


def test_listeners_see_events_and_reset_starts_a_window() -> None:
    obs = Observations()
    seen: list[ProfileEvent] = []
    obs.listeners.append(seen.append)
    event = ProfileEvent("sim-0001", "SetChargingProfile", 1.0, "Accepted", "StationMax", 5e3)
    obs.profile_event(event)
    obs.ack("MeterValues", 2.0)
    obs.call_errors["MeterValues:InternalError"] += 1
    assert seen == [event] and obs.received["SetChargingProfile"] == 1
    summary = obs.summary()
    assert summary["meter_values"] == 1 and summary["call_errors"] == {
        "MeterValues:InternalError": 1
    }
    obs.reset()
    assert obs.summary()["calls"] == 0 and not obs.profile_events and obs.listeners
