"""The OpenADR 2.0b mapping core, driven with parsed-event dicts (no VTN, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dr_bridge.config import DEFAULT_SIMPLE_LEVELS
from dr_bridge.mapping import capacity_fraction_amount, simple_amount
from dr_bridge.oadr2_map import ZoneView, map_event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STATIONS = {"cs-1": "zone-a", "cs-3": "zone-b"}
ZONES = ZoneView(
    is_zone=lambda z: z in {"zone-a", "zone-b", "zone-c"},
    zone_of=STATIONS.get,
    all_zones=lambda: ["zone-a", "zone-b", "zone-c"],
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


def test_load_control_capacity_is_a_percent_reduction() -> None:
    m = run(event("LOAD_CONTROL", "x-loadControlCapacity", [0.7, 1.0]))
    # 70 % of capacity kept -> 30 % reduction; 100 % kept -> nothing for that interval.
    assert [(s.signal_type, s.target_reduction_pct) for s in m.signals] == [("CURTAIL", 30.0)]
    assert capacity_fraction_amount(40).target_reduction_pct == 60.0  # type: ignore[union-attr]


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
