"""OpenADR 2.0b event (as openleadr parses it) -> our signals. Pure: no I/O, no clock.

One event becomes one signal per (zone, interval) with an amount, id
``oadr2:<event id>:<zone>:<interval>``, modification = the event's modification number,
and ``event_id = openadr2:<event id>`` on every one of them: the intervals of one event
are one utility event (one baseline), each interval keeping its own window.

Signals (2.0b profile, signal type per signal name):

- ``SIMPLE`` / ``level`` -> the configured level table;
- ``LOAD_DISPATCH`` ``setpoint`` -> ``zone_limit_kw``; ``delta`` -> ``target_reduction_kw``;
- ``LOAD_CONTROL`` ``x-loadControlCapacity`` v (fraction 0..1 of the load's capacity to
  operate at) -> ``zone_limit_kw`` = v x the zone's capacity (not a cut of the baseline);
  ``x-loadControlLevelOffset`` n > 0 (discrete levels above normal, more = less load) ->
  the level table at min(n, 3); ``x-loadControlPercentOffset`` p > 0 (percent below
  normal operation) -> ``target_reduction_pct`` p; ``x-loadControlSetpoint`` -> a kW limit.

Timing: ``tolerance.startafter`` lets a VEN start up to that much later; we take a fixed
offset within it, derived from the VEN and event ids (spread among VENs, stable across
revisions and restarts), and shift the event by it. ``ramp_up_period`` starts the first
interval that much earlier, so the load is at its target when the event starts.

The answer (:attr:`Mapped.opt`) is optOut when gridctl cannot comply: no target maps to a
zone, no signal we can act on, no stations in the zones, a limit below the zone's
minimum draw (the floors of active sessions), or the event already over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dr_bridge.mapping import (
    Amount,
    limit_amount,
    make_signal,
    reduction_kw_amount,
    reduction_pct_amount,
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
    #: kW the zone cannot go below under CURTAIL (Σ of its stations' min_active_kw)
    floor_kw: Callable[[str], float] = lambda _zone: 0.0


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


def _duration_of(value: Any, *keys: str) -> timedelta | None:
    """A timedelta, or one nested under ``keys`` in openleadr's parsed dicts."""
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, value.get("duration") if key == "duration" else None)
    return value if isinstance(value, timedelta) and value > timedelta() else None


def start_offset(event: dict[str, Any], ven_id: str | None) -> timedelta:
    """Our fixed start within ``tolerance.startafter`` (0 without one)."""
    tolerance = (event.get("active_period") or {}).get("tolerance")
    window = _duration_of(tolerance, "startafter") or _duration_of(
        tolerance, "tolerate", "startafter"
    )
    if window is None:
        return timedelta()
    key = f"{ven_id}:{event['event_descriptor']['event_id']}".encode()
    fraction = int.from_bytes(hashlib.sha256(key).digest()[:4], "big") / 2**32
    return timedelta(seconds=int(window.total_seconds() * fraction))


def interval_windows(
    event: dict[str, Any], intervals: list[dict[str, Any]], offset: timedelta = timedelta()
) -> list[tuple[datetime, datetime]]:
    """Start and end of each interval; an interval without its own dtstart starts where
    the previous one ended (the first at the active period's start). ``offset`` shifts
    them all (start-after); a ramp-up period starts the first one earlier."""
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
        out.append((start + offset, end + offset))
        cursor = end
    # openleadr parses x-eiRampUp as "ramp_up"; its own objects call it "ramp_up_period"
    ramp_up = _duration_of(period.get("ramp_up") or period.get("ramp_up_period"), "duration")
    if out and ramp_up is not None:
        out[0] = (out[0][0] - ramp_up, out[0][1])
    return out


def signal_amount(
    signal: dict[str, Any],
    payload: float,
    levels: dict[int, tuple[str, float]],
    capacity_kw: float | None = None,
) -> Amount | None:
    """One interval payload of one event signal, for a zone of ``capacity_kw`` -> an
    amount; None if it asks for nothing (or for a capacity share of an unknown capacity)."""
    name, kind = signal.get("signal_name"), signal.get("signal_type")
    if name == "SIMPLE" or kind == "level":
        return simple_amount(payload, levels)
    if kind == "x-loadControlCapacity":
        fraction = payload / 100 if payload > 1 else payload  # some VTNs send percent
        if fraction >= 1 or capacity_kw is None:
            return None
        return limit_amount(max(0.0, fraction) * capacity_kw)
    if kind == "x-loadControlLevelOffset":
        return simple_amount(min(payload, 3), levels) if payload > 0 else None
    if kind == "x-loadControlPercentOffset":
        return reduction_pct_amount(payload) if payload > 0 else None
    scale = _kw_factor(signal.get("measurement"))
    if kind in ("setpoint", "x-loadControlSetpoint"):
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


_LOAD_CONTROL = (
    "x-loadControlCapacity",
    "x-loadControlLevelOffset",
    "x-loadControlPercentOffset",
    "x-loadControlSetpoint",
)


def _mappable(signal: dict[str, Any]) -> bool:
    name, kind = signal.get("signal_name"), signal.get("signal_type")
    return (
        name == "SIMPLE"
        or kind in ("level", "setpoint", *_LOAD_CONTROL)
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
    windows = interval_windows(event, intervals, start_offset(event, ven_id))
    if now is not None and windows and max(end for _, end in windows) <= now:
        return Mapped(zones=found, reason="the event is already over", opt_out=True)
    staffed = [z for z in found if zones.capacity_kw(z) is not None]
    if not staffed:
        return Mapped(zones=found, reason=f"no stations in {', '.join(found)}", opt_out=True)
    out: list[DemandResponseSignal] = []
    problems: list[str] = []
    for index, (interval, (start, end)) in enumerate(zip(intervals, windows, strict=True)):
        if end <= start:
            continue
        payload = float(interval.get("signal_payload", 0))
        uid = interval.get("uid", index)
        for zone in staffed:
            amount = signal_amount(chosen, payload, levels, zones.capacity_kw(zone))
            if amount is None:
                continue
            floor = zones.floor_kw(zone)
            if amount.zone_limit_kw is not None and amount.zone_limit_kw < floor:
                problems.append(
                    f"{zone}: limit {amount.zone_limit_kw:g} kW is below its minimum draw "
                    f"{floor:g} kW"
                )
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
    if problems:
        # Enforced as well as we can, but the utility is told we cannot comply.
        return Mapped(signals=out, zones=found, reason="; ".join(problems), opt_out=True)
    return Mapped(signals=out, zones=found, reason=None if out else "every interval is level 0")
