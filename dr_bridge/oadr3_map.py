"""OpenADR 3 (3.0.1 and 3.1.0) event (JSON) -> our signals, and its revision tag. Pure.

One event becomes one signal per (zone, interval) with an amount, id
``oadr3:<event id>:<zone>:<interval id>``, all sharing ``event_id = openadr3:<event id>``
(one utility event, one baseline). 3.x events carry no modification number and no status:
a change is a new revision tag, a deletion or a zero-length window is a cancellation.
The VEN turns those into revisions; this module only maps.

Payload types (units from the event's ``payloadDescriptors``, else the program's):

- ``IMPORT_CAPACITY_LIMIT``, ``DISPATCH_SETPOINT`` in ``KW`` (or ``W``/``MW``) ->
  ``zone_limit_kw``; in ``PERCENT`` (a fraction 0..1 per the spec's units table) -> that
  fraction of the zone's capacity (Σ min(max_station_kw, contract_max_kw)), never kW.
- ``DISPATCH_SETPOINT_RELATIVE`` < 0 -> ``target_reduction_kw`` (``PERCENT``: a
  reduction of that fraction of the baseline); >= 0 asks for no reduction.
- ``SIMPLE`` 0..3 -> the configured level table.
- anything else (prices, GHG, ``EXPORT_*``, ``CONTROL_LEVEL_OFFSET*``, alerts, curves)
  is refused with a reason the VEN logs: none of them says how much load to shed.

Targets (3.0.1 ``[{"type", "values"}]``, 3.1 plain strings): ``GROUP`` = zone id;
``RESOURCE_NAME`` = a zone (our resources are zones) or a station -> its zone;
``VEN_NAME`` = ours -> the whole VEN. An event without targets takes its program's
targets; with none either, it is addressed to the whole VEN (3.x: an untargeted event
applies to every VEN of the program). For the whole VEN a kW amount is a *site* amount:
it is divided among the zones in proportion to their capacity (so the zones together
get the limit, not each of them); relative amounts (SIMPLE, PERCENT) apply to every zone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dr_bridge.mapping import (
    Amount,
    limit_amount,
    make_signal,
    reduction_kw_amount,
    reduction_pct_amount,
    simple_amount,
)
from dr_bridge.oadr2_map import ZoneView
from pipeline.contracts import DemandResponseSignal

SOURCE = "openadr3"
_KW = {"W": 1e-3, "KW": 1.0, "MW": 1e3}
_LIMITS = ("IMPORT_CAPACITY_LIMIT", "DISPATCH_SETPOINT")
_CURTAILMENT = (*_LIMITS, "DISPATCH_SETPOINT_RELATIVE", "SIMPLE")
_ISO = re.compile(
    r"^P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_MAX = timedelta(days=366 * 100)  # "P9999Y" means "open-ended"; keep datetimes in range
#: a whole-VEN target (no targets, or our VEN_NAME)
WHOLE_VEN = "*"


def parse_iso_duration(text: str) -> timedelta:
    """ISO 8601 duration (``PT15M``, ``P1DT2H``; years and months approximated)."""
    match = _ISO.match(text.strip()) if isinstance(text, str) else None
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    g = {k: float(v) for k, v in match.groupdict().items() if v}
    days = g.get("y", 0) * 365 + g.get("mo", 0) * 30 + g.get("w", 0) * 7 + g.get("d", 0)
    if days > _MAX.days:
        return _MAX
    return timedelta(days=days, hours=g.get("h", 0), minutes=g.get("mi", 0), seconds=g.get("s", 0))


def parse_ts(text: str) -> datetime:
    """RFC 3339; a timestamp without offset (seen from real VTNs) is read as UTC.

    The VEN warns about such VTNs once (:func:`naive_timestamps`); mapping stays lenient.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a timestamp: {text!r}")
    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _is_naive(text: Any) -> bool:
    try:
        return (
            isinstance(text, str)
            and datetime.fromisoformat(text.strip().replace("Z", "+00:00")).tzinfo is None
        )
    except ValueError:
        return False


def naive_timestamps(event: dict[str, Any]) -> list[str]:
    """The event's timestamps that carry no offset (a spec deviation worth one warning)."""
    found = [event.get("modificationDateTime"), (event.get("intervalPeriod") or {}).get("start")]
    found += [(i.get("intervalPeriod") or {}).get("start") for i in event.get("intervals") or []]
    return [t for t in found if _is_naive(t)]


def revision_tag(event: dict[str, Any]) -> str:
    """``<modificationDateTime>|<content hash>``: two modifications within the same
    second (the VTN's clock resolution) still differ by content, so neither is lost."""
    modified = event.get("modificationDateTime")
    stamp = parse_ts(modified).isoformat() if modified else "-"
    content = {
        k: v for k, v in event.items() if k not in ("createdDateTime", "modificationDateTime")
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return f"{stamp}|{digest[:32]}"


def _stamp(tag: str) -> datetime | None:
    if tag.startswith("mdt:"):  # tags stored before the content hash was part of them
        return parse_ts(tag[4:])
    stamp, sep, _ = tag.partition("|")
    return parse_ts(stamp) if sep and stamp != "-" else None


def is_newer(tag: str, stored: str) -> bool:
    """Another tag is a new revision, unless its modification time is older (a stale
    read from a VTN replica); the same time with other content is new."""
    if tag == stored:
        return False
    new, old = _stamp(tag), _stamp(stored)
    if stored.startswith("mdt:") and new is not None and new == old:
        return False  # same revision, first seen under the old tag format
    return not (new is not None and old is not None and new < old)


@dataclass
class Mapped3:
    signals: list[DemandResponseSignal] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    #: why nothing (or not everything) was mapped, for the log
    reason: str | None = None


def _pairs(targets: Iterable[Any], zones: ZoneView) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for target in targets:
        if isinstance(target, str):  # 3.1: plain target names
            out.append(("GROUP" if zones.is_zone(target) else "RESOURCE_NAME", target))
        elif isinstance(target, dict):
            out.extend((str(target.get("type")), str(v)) for v in target.get("values") or [])
    return out


def target_zones(
    event: dict[str, Any],
    ven_name: str | None,
    zones: ZoneView,
    program: dict[str, Any] | None = None,
) -> tuple[list[str], list[str]]:
    """``(zones, unknown targets)``; zones is ``[WHOLE_VEN]`` for the VEN as a whole."""
    targets = event.get("targets") or (program or {}).get("targets") or []
    if not targets:
        return [WHOLE_VEN], []
    found: set[str] = set()
    unknown: list[str] = []
    for kind, value in _pairs(targets, zones):
        if kind in ("GROUP", "RESOURCE_NAME") and zones.is_zone(value):
            found.add(value)
        elif kind == "RESOURCE_NAME" and (zone := zones.zone_of(value)):
            found.add(zone)
        elif kind in ("VEN_NAME", "RESOURCE_NAME") and ven_name is not None and value == ven_name:
            return [WHOLE_VEN], []
        elif kind in ("PROGRAM_NAME", "POSTAL_CODE", "COUNTRY", "STATE", "LOCATION"):
            continue  # about the program or place, not our zones: narrows nothing here
        else:
            unknown.append(f"{kind} {value}")
    return sorted(found), unknown


def _units(event: dict[str, Any], program: dict[str, Any] | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for source in (
        (program or {}).get("payloadDescriptors") or [],
        event.get("payloadDescriptors") or [],
    ):
        for d in source:
            if isinstance(d, dict) and d.get("objectType", "EVENT_PAYLOAD_DESCRIPTOR") != (
                "REPORT_PAYLOAD_DESCRIPTOR"
            ):
                out[str(d.get("payloadType"))] = d.get("units")
    return out


def zone_amount(
    kind: str,
    value: float,
    units: str | None,
    levels: dict[int, tuple[str, float]],
    capacity_kw: float | None,
    share: float,
) -> tuple[Amount | None, str | None]:
    """One payload for one zone -> ``(amount, refusal)``; ``share``: the zone's part of a
    whole-VEN kW amount (1.0 for a zone targeted itself)."""
    unit = (units or "KW").upper()
    if kind == "SIMPLE":
        return simple_amount(value, levels), None
    if unit == "PERCENT":
        if not -1.0 <= value <= 1.0:
            return None, f"{kind} {value} PERCENT is outside -1..1 (the spec's fraction)"
        if kind in _LIMITS:
            if capacity_kw is None:
                return None, f"{kind} in PERCENT needs the zone's capacity (no stations)"
            return limit_amount(max(0.0, value) * capacity_kw), None
        # DISPATCH_SETPOINT_RELATIVE: a fraction of the baseline
        return (reduction_pct_amount(-value * 100) if value < 0 else None), None
    if unit not in _KW:
        return None, f"{kind} in units {unit} cannot be turned into kW"
    kw = value * _KW[unit] * share
    if kind in _LIMITS:
        return limit_amount(kw), None
    return (reduction_kw_amount(kw) if value < 0 else None), None


def _shares(zones: list[str], all_zones: ZoneView) -> dict[str, float]:
    """Each zone's part of a site amount, by capacity (equal parts if none is known)."""
    caps = {z: all_zones.capacity_kw(z) or 0.0 for z in zones}
    total = sum(caps.values())
    if total <= 0:
        return {z: 1.0 / len(zones) for z in zones}
    return {z: c / total for z, c in caps.items()}


def interval_windows(
    event: dict[str, Any], program: dict[str, Any] | None = None
) -> list[tuple[datetime, datetime]]:
    """Start and end of each interval: its own ``intervalPeriod``, else the event's (or
    the program's), an interval without a start beginning where the previous one ended."""
    event_id = event.get("id")
    period = event.get("intervalPeriod") or (program or {}).get("intervalPeriod") or {}
    cursor = parse_ts(period["start"]) if period.get("start") else None
    default_duration = parse_iso_duration(period["duration"]) if period.get("duration") else None
    out = []
    for index, interval in enumerate(event.get("intervals") or []):
        own = interval.get("intervalPeriod") or {}
        start = parse_ts(own["start"]) if own.get("start") else cursor
        duration = parse_iso_duration(own["duration"]) if own.get("duration") else default_duration
        if start is None or duration is None:
            raise ValueError(f"event {event_id}: interval {index} has no start or duration")
        out.append((start, start + duration))
        cursor = start + duration
    return out


def map_event(
    event: dict[str, Any],
    *,
    modification: int,
    ven_name: str | None,
    zones: ZoneView,
    levels: dict[int, tuple[str, float]],
    priority: int,
    now: datetime,
    program: dict[str, Any] | None = None,
) -> Mapped3:
    """Map one event at revision ``modification``; a zero-length event maps to nothing."""
    event_id = str(event["id"])
    found, unknown = target_zones(event, ven_name, zones, program)
    whole_ven = found == [WHOLE_VEN]
    if whole_ven:
        found = sorted(zones.all_zones())
    if not found:
        return Mapped3(reason=f"no target maps to a known zone ({', '.join(unknown)})")
    shares = _shares(found, zones) if whole_ven else dict.fromkeys(found, 1.0)
    units = _units(event, program)
    refused: list[str] = []
    out: list[DemandResponseSignal] = []
    for index, (interval, (start, end)) in enumerate(
        zip(event.get("intervals") or [], interval_windows(event, program), strict=True)
    ):
        if end <= start:
            continue
        payloads = [p for p in interval.get("payloads") or [] if isinstance(p, dict)]
        for p in payloads:
            if p.get("type") not in _CURTAILMENT:
                refused.append(f"{p.get('type')}: not a curtailment we can act on")
        chosen = next((p for p in payloads if p.get("type") in _CURTAILMENT), None)
        if chosen is None:
            continue
        kind = str(chosen["type"])
        values = chosen.get("values") or []
        if not values or isinstance(values[0], bool) or not isinstance(values[0], int | float):
            refused.append(f"{kind}: payload value is not a number")
            continue
        for zone in found:
            amount, why = zone_amount(
                kind,
                float(values[0]),
                units.get(kind),
                levels,
                zones.capacity_kw(zone),
                shares[zone],
            )
            if why:
                refused.append(why)
            if amount is None:
                continue
            out.append(
                make_signal(
                    signal_id=f"oadr3:{event_id}:{zone}:{interval.get('id', index)}",
                    modification=modification,
                    zone_id=zone,
                    amount=amount,
                    start=start,
                    end=end,
                    priority=priority,
                    source=SOURCE,
                    now=now,
                    event_id=f"{SOURCE}:{event_id}",
                    event_priority=_event_priority(event),
                )
            )
    reasons = sorted(set(refused)) + ([f"unknown targets: {', '.join(unknown)}"] if unknown else [])
    reason = "; ".join(reasons) if reasons else (None if out else "nothing to curtail")
    return Mapped3(signals=out, zones=found, reason=reason)


def _event_priority(event: dict[str, Any]) -> int | None:
    """3.x priority as sent (0 = most urgent); None when absent or unusable."""
    value = event.get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
