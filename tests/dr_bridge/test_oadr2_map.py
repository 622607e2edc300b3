"""The OpenADR 2.0b mapping core, driven with parsed-event dicts (no VTN, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dr_bridge.config import DEFAULT_SIMPLE_LEVELS
from dr_bridge.mapping import simple_amount
from dr_bridge.oadr2_map import ZoneView, map_event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STATIONS = {"cs-1": "zone-a", "cs-3": "zone-b"}
ZONES = ZoneView(
    is_zone=lambda z: z in {"zone-a", "zone-b", "zone-c"},
    zone_of=STATIONS.get,
    all_zones=lambda: ["zone-a", "zone-b", "zone-c"],
    capacity_kw={"zone-a": 100.0, "zone-b": 50.0, "zone-c": 20.0}.get,
    floor_kw={"zone-a": 8.0, "zone-b": 0.0, "zone-c": 0.0}.__getitem__,
)


def event(signal_name: str, signal_type: str, payloads: list[float], **over: object) -> dict:
    ev: dict = {
        "event_descriptor": {"event_id": "e1", "modification_number": 4, "event_status": "far"},
        "active_period": {"dtstart": NOW, "duration": timedelta(hours=1)},
        "event_signals": [
            {
                "signal_name": signal_name,
                "signal_type": signal_type,
                "intervals": [
                    {"duration": timedelta(minutes=30), "signal_payload": p, "uid": i}
                    for i, p in enumerate(payloads)
                ],
            }
        ],
        "targets": [{"group_id": "zone-a"}],
    }
    ev.update(over)
    return ev


def run(ev: dict, ven_zones: dict | None = None, levels=DEFAULT_SIMPLE_LEVELS):  # type: ignore[no-untyped-def]
    return map_event(
        ev,
        ven_id="ven-1",
        zones=ZONES,
        ven_zones=ven_zones or {},
        levels=levels,
        priority=1,
        now=NOW,
    )


@pytest.mark.parametrize(
    "level,expected",
    [(0, None), (1, ("CURTAIL", 20.0)), (2, ("CURTAIL", 50.0)), (3, ("SHED", 100.0))],
)
def test_simple_levels(level: int, expected: tuple[str, float] | None) -> None:
    amount = simple_amount(level, DEFAULT_SIMPLE_LEVELS)
    assert (amount and (amount.signal_type, amount.target_reduction_pct)) == expected


def test_levels_are_configurable() -> None:
    m = run(event("SIMPLE", "level", [1]), levels={1: ("CURTAIL", 35.0)})
    assert [s.target_reduction_pct for s in m.signals] == [35.0]


def test_load_control_signals_per_the_profile() -> None:
    # capacity: a fraction of the zone's capacity (100 kW) to operate at -> a limit;
    # 1.0 (full capacity) asks for nothing in that interval
    cap = run(event("LOAD_CONTROL", "x-loadControlCapacity", [0.7, 1.0]))
    assert [(s.signal_type, s.zone_limit_kw) for s in cap.signals] == [("CURTAIL", 70.0)]
    assert [
        s.zone_limit_kw for s in run(event("LOAD_CONTROL", "x-loadControlCapacity", [40])).signals
    ] == [40.0]
    level = run(event("LOAD_CONTROL", "x-loadControlLevelOffset", [1, 5, 0]))
    assert [(s.signal_type, s.target_reduction_pct) for s in level.signals] == [
        ("CURTAIL", 20.0),
        ("SHED", 100.0),  # offsets beyond 3 are the highest level
    ]
    pct = run(event("LOAD_CONTROL", "x-loadControlPercentOffset", [25, -10]))
    assert [s.target_reduction_pct for s in pct.signals] == [25.0]
    setpoint = run(event("LOAD_CONTROL", "x-loadControlSetpoint", [30]))
    assert [s.zone_limit_kw for s in setpoint.signals] == [30.0]
    assert {cap.opt, level.opt, pct.opt, setpoint.opt} == {"optIn"}


def test_opt_out_when_gridctl_cannot_comply() -> None:
    # zone-a's floors are 8 kW: a 5 kW limit cannot be met (still enforced, but optOut)
    tight = run(event("LOAD_DISPATCH", "setpoint", [5]))
    assert (tight.opt, [s.zone_limit_kw for s in tight.signals]) == ("optOut", [5.0])
    assert "below its minimum draw 8 kW" in (tight.reason or "")
    over = event("SIMPLE", "level", [1])
    over["active_period"]["dtstart"] = NOW - timedelta(hours=2)
    assert (run(over).opt, run(over).reason) == ("optOut", "the event is already over")
    empty = ZoneView(lambda z: z == "zone-e", lambda s: None, lambda: ["zone-e"])
    lonely = map_event(
        event("SIMPLE", "level", [1], targets=[{"group_id": "zone-e"}]),
        ven_id="ven-1",
        zones=empty,
        ven_zones={},
        levels=DEFAULT_SIMPLE_LEVELS,
        priority=2,
        now=NOW,
    )
    assert (lonely.opt, lonely.reason) == ("optOut", "no stations in zone-e")


def test_start_after_and_ramp_up_move_the_window() -> None:
    ev = event("SIMPLE", "level", [1])
    ev["active_period"]["ramp_up_period"] = {"duration": timedelta(minutes=5)}
    [ramped] = run(ev).signals
    assert (ramped.start_ts, ramped.end_ts) == (
        NOW - timedelta(minutes=5),
        NOW + timedelta(minutes=30),
    )
    ev = event("SIMPLE", "level", [1, 2])
    ev["active_period"]["tolerance"] = {"tolerate": {"startafter": timedelta(minutes=10)}}
    first, second = run(ev).signals
    shift = first.start_ts - NOW
    assert timedelta() <= shift < timedelta(minutes=10)
    assert run(ev).signals[0].start_ts == first.start_ts  # the same offset every time
    assert (first.end_ts - first.start_ts, second.start_ts) == (timedelta(minutes=30), first.end_ts)


def test_setpoint_and_dispatch_delta_in_kw() -> None:
    limit = run(event("LOAD_DISPATCH", "setpoint", [150]))
    assert [s.zone_limit_kw for s in limit.signals] == [150.0]
    delta = run(event("LOAD_DISPATCH", "delta", [-40]))
    assert [s.target_reduction_kw for s in delta.signals] == [40.0]
    watts = event("LOAD_DISPATCH", "setpoint", [90_000])
    watts["event_signals"][0]["measurement"] = {"scale": "none", "unit": "W"}
    assert [s.zone_limit_kw for s in run(watts).signals] == [90.0]


def test_intervals_get_their_start_from_the_active_period() -> None:
    m = run(event("SIMPLE", "level", [1, 2]))
    assert [(s.start_ts, s.end_ts, s.modification, s.priority) for s in m.signals] == [
        (NOW, NOW + timedelta(minutes=30), 4, 1),
        (NOW + timedelta(minutes=30), NOW + timedelta(hours=1), 4, 1),
    ]
    assert m.signals[0].signal_id == "oadr2:e1:zone-a:0"


def test_targets() -> None:
    by_station = run(event("SIMPLE", "level", [1], targets=[{"resource_id": "cs-3"}]))
    assert by_station.zones == ["zone-b"]
    every = run(event("SIMPLE", "level", [1], targets=[{"ven_id": "ven-1"}]))
    assert every.zones == ["zone-a", "zone-b", "zone-c"]
    narrowed = run(
        event("SIMPLE", "level", [1], targets=[{"ven_id": "ven-1"}]),
        ven_zones={"ven-1": ["zone-c"]},
    )
    assert narrowed.zones == ["zone-c"]
    untargeted = run(event("SIMPLE", "level", [1], targets=[]))
    assert untargeted.zones == ["zone-a", "zone-b", "zone-c"]


def test_opt_out_reasons() -> None:
    nowhere = run(event("SIMPLE", "level", [2], targets=[{"group_id": "zone-x"}]))
    assert nowhere.opt == "optOut"
    assert "group_id zone-x" in (nowhere.reason or "")
    price = run(event("ELECTRICITY_PRICE", "price", [0.3]))
    assert price.opt == "optOut"
    assert "ELECTRICITY_PRICE/price" in (price.reason or "")


def test_cancelled_maps_to_nothing_and_opts_in() -> None:
    ev = event("SIMPLE", "level", [2])
    ev["event_descriptor"]["event_status"] = "cancelled"
    m = run(ev)
    assert (m.cancelled, m.signals, m.opt) == (True, [], "optIn")


def test_intervals_of_one_event_share_its_identity_and_keep_its_priority() -> None:
    ev = event("SIMPLE", "level", [2, 1])
    ev["event_descriptor"]["priority"] = 3
    mapped = run(ev)
    assert [(s.signal_id, s.event_id, s.event_priority) for s in mapped.signals] == [
        ("oadr2:e1:zone-a:0", "openadr2:e1", 3),
        ("oadr2:e1:zone-a:1", "openadr2:e1", 3),
    ]
