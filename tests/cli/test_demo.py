"""``gridctl demo``'s scenario end to end: real engine, gateway, API and OCPP fleet."""

from __future__ import annotations

from cli.demo import Demo, DemoConfig, baseline_wait


def test_baseline_wait_covers_two_meter_intervals_not_a_minute_boundary() -> None:
    # the baseline is the latest fresh sample per connector: every charger reports once
    assert baseline_wait(2.0, least=5.0) == 5.0  # 2 x 2 s + 1 s = 5 s
    assert baseline_wait(10.0, least=5.0) == 21.0  # slow meters: 2 x 10 s + 1 s


async def test_demo_curtails_the_zone_and_clears_after_the_event() -> None:
    lines: list[str] = []
    state = await Demo(
        DemoConfig(chargers=12, zones=2, duration=30),
        on_line=lines.append,
    ).run()
    zone_stations = state.zone_stations
    assert zone_stations, lines
    # Every station of the event zone got its limit, and every limit was cleared after.
    assert set(state.profiles_received) == zone_stations, lines
    assert set(state.clears_received) == zone_stations, lines
    assert state.command_status["Accepted"] >= 2 * len(zone_stations)
    assert state.last_profile_latency is not None and state.last_profile_latency < 5.0
    assert state.under_cap_after is not None, lines
