"""``gridctl demo``'s scenario end to end: real engine, gateway, API and OCPP fleet."""

from __future__ import annotations

from cli.demo import Demo, DemoConfig, baseline_wait


def test_baseline_wait_lands_after_a_closed_minute() -> None:
    wait = baseline_wait(1_000_000.0, least=20.0, margin=12.0)  # 16:40 past the hour
    assert (1_000_000.0 + wait) % 60 == 12.0
    assert wait >= 20.0


async def test_demo_curtails_the_zone_and_clears_after_the_event() -> None:
    lines: list[str] = []
    state = await Demo(
        DemoConfig(chargers=12, zones=2, duration=40, baseline_least=5.0),
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
