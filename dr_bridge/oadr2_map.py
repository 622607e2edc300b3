"""OpenADR 2.0b event (as openleadr parses it) -> our signals. Pure: no I/O, no clock.

One event becomes one signal per (zone, interval) with an amount, id
``oadr2:<event id>:<zone>:<interval>``, modification = the event's modification number,
so each interval keeps its own window and a later modification replaces it in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dr_bridge.mapping import (
    Amount,
    capacity_fraction_amount,
    limit_amount,
    make_signal,
    reduction_kw_amount,
    simple_amount,
)
from pipeline.contracts import DemandResponseSignal

SOURCE = "openadr2"
_SCALE = {"none": 1e-3, "k": 1.0, "M": 1e3, "G": 1e6}  # to kW, for power measurements in W


@dataclass
class ZoneView:
    """What the mapping needs to know about zones (a ZoneDirectory provides it)."""

    is_zone: Callable[[str], bool]
    zone_of: Callable[[str], str | None]
    all_zones: Callable[[], Iterable[str]]
    #: kW the zone's stations can draw together; None when unknown
    capacity_kw: Callable[[str], float | None] = lambda _zone: None


@dataclass
class Mapped:
    """The signals of one event revision, the zones targeted, and why none if none."""

    signals: list[DemandResponseSignal] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    reason: str | None = None
    cancelled: bool = False
    #: opt out: no target maps to a known zone, or no signal we can act on
    opt_out: bool = False

    @property
    def opt(self) -> str:
        return "optOut" if self.opt_out else "optIn"


def target_zones(
    event: dict[str, Any], ven_id: str | None, zones: ZoneView, ven_zones: dict[str, list[str]]
) -> tuple[list[str], list[str]]:
    """``(zones, unknown targets)``: group_id = zone id; resource_id = station -> its zone;
    our ven_id -> every zone, or those the mapping file lists for it."""
    found: set[str] = set()
    unknown: list[str] = []
    targets = event.get("targets") or [{"ven_id": ven_id}]
    for target in targets:
        for kind, value in target.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is None:
                    continue
                if kind == "group_id":
                    (found.add(v) if zones.is_zone(v) else unknown.append(f"group_id {v}"))
                elif kind == "resource_id":
                    zone = zones.zone_of(v)
                    (found.add(zone) if zone else unknown.append(f"resource_id {v}"))
                elif kind == "ven_id":
                    if ven_id is not None and v != ven_id:
                        unknown.append(f"ven_id {v} (not us)")
                    elif v in ven_zones:
                        mapped = [z for z in ven_zones[v] if zones.is_zone(z)]
                        found.update(mapped)
                        if not mapped:
                            unknown.append(f"ven_id {v} (its mapped zones are unknown)")
                    else:
                        found.update(zones.all_zones())
                else:
                    unknown.append(f"{kind} {v}")
    return sorted(found), unknown


def interval_windows(
    event: dict[str, Any], intervals: list[dict[str, Any]]
) -> list[tuple[datetime, datetime]]:
    """Start and end of each interval; an interval without its own dtstart starts where
    the previous one ended (the first at the active period's start)."""
    period = event.get("active_period") or {}
    cursor: datetime | None = period.get("dtstart")
    period_end = (
        cursor + period["duration"] if cursor is not None and period.get("duration") else None
    )
    out = []
    for interval in intervals:
        start = interval.get("dtstart") or cursor
        duration: timedelta | None = interval.get("duration")
        if start is None:
            raise ValueError("interval without dtstart and no active period to derive it from")
        end = start + duration if duration else (period_end or start)
        out.append((start, end))
        cursor = end
    return out


def signal_amount(
    signal: dict[str, Any], payload: float, levels: dict[int, tuple[str, float]]
) -> Amount | None:
    """One interval payload of one event signal -> an amount; None if nothing to do."""
    name, kind = signal.get("signal_name"), signal.get("signal_type")
    if name == "SIMPLE" or kind == "level":
        return simple_amount(payload, levels)
    if kind == "x-loadControlCapacity":
        return capacity_fraction_amount(payload)
    scale = _kw_factor(signal.get("measurement"))
    if kind == "setpoint":
        return limit_amount(payload * scale)
    if name == "LOAD_DISPATCH" and kind == "delta":
        return reduction_kw_amount(payload * scale)
    return None


def _event_priority(descriptor: dict[str, Any]) -> int | None:
    """2.0b priority as sent (0 = none, 1 = highest); None when absent or unusable."""
    try:
        value = int(descriptor.get("priority"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _kw_factor(measurement: Any) -> float:
    if isinstance(measurement, dict):
        scale = measurement.get("scale")
        if scale in _SCALE:
            return _SCALE[scale]
    return 1.0  # our default and the usual LOAD_DISPATCH unit: kW


def _mappable(signal: dict[str, Any]) -> bool:
    name, kind = signal.get("signal_name"), signal.get("signal_type")
    return (
        name == "SIMPLE"
        or kind in ("level", "x-loadControlCapacity", "setpoint")
        or (name == "LOAD_DISPATCH" and kind == "delta")
    )


def map_event(
    event: dict[str, Any],
    *,
    ven_id: str | None,
    zones: ZoneView,
    ven_zones: dict[str, list[str]],
    levels: dict[int, tuple[str, float]],
    priority: int,
    now: datetime,
) -> Mapped:
    """Map one event revision. A cancelled event maps to no signals (the store then
    publishes RESTORE for what the previous revision had)."""
    descriptor = event["event_descriptor"]
    event_id = descriptor["event_id"]
    modification = int(descriptor.get("modification_number") or 0)
    if descriptor.get("event_status") == "cancelled":
        return Mapped(cancelled=True)
    found, unknown = target_zones(event, ven_id, zones, ven_zones)
    if not found:
        why = ", ".join(unknown) if unknown else "no targets"
        return Mapped(reason=f"no target maps to a known zone ({why})", opt_out=True)
    signals = event.get("event_signals") or []
    if isinstance(signals, dict):
        signals = signals.get("event_signals", [])
    usable = [s for s in signals if _mappable(s)]
    if not usable:
        names = ", ".join(f"{s.get('signal_name')}/{s.get('signal_type')}" for s in signals)
        return Mapped(
            zones=found, reason=f"no signal we can act on ({names or 'none'})", opt_out=True
        )
    chosen = usable[0]  # one curtailment signal per event; others are ignored
    intervals = chosen.get("intervals") or []
    out: list[DemandResponseSignal] = []
    for index, (interval, (start, end)) in enumerate(
        zip(intervals, interval_windows(event, intervals), strict=True)
    ):
        if end <= start:
            continue
        amount = signal_amount(chosen, float(interval.get("signal_payload", 0)), levels)
        if amount is None:
            continue
        uid = interval.get("uid", index)
        for zone in found:
            out.append(
                make_signal(
                    signal_id=f"oadr2:{event_id}:{zone}:{uid}",
                    modification=modification,
                    zone_id=zone,
                    amount=amount,
                    start=start,
                    end=end,
                    priority=priority,
                    source=SOURCE,
                    now=now,
                    event_id=f"{SOURCE}:{event_id}",
                    event_priority=_event_priority(descriptor),
                )
            )
    return Mapped(signals=out, zones=found, reason=None if out else "every interval is level 0")
