"""OpenADR 3.0.1 event (JSON) -> our signals, and its revision tag. Pure: no I/O, no clock.

One event becomes one signal per (zone, interval) with an amount, id
``oadr3:<event id>:<zone>:<interval id>``. 3.x events carry no modification number and no
status: a change is a new ``modificationDateTime`` (else a new content hash), a deletion or
a zero-length window is a cancellation. The VEN turns those into revisions; this module
only maps.

Payload types: ``IMPORT_CAPACITY_LIMIT`` and ``DISPATCH_SETPOINT`` -> ``zone_limit_kw``;
``DISPATCH_SETPOINT_RELATIVE`` < 0 -> ``target_reduction_kw``; ``SIMPLE`` -> the level
table. Targets (3.0.1 ``[{"type", "values"}]``, or 3.1 plain strings): ``GROUP`` = zone id,
``RESOURCE_NAME`` = station id -> its zone, ``VEN_NAME`` = ours -> every zone; no targets
-> every zone.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dr_bridge.mapping import Amount, limit_amount, make_signal, reduction_kw_amount, simple_amount
from dr_bridge.oadr2_map import ZoneView
from pipeline.contracts import DemandResponseSignal

SOURCE = "openadr3"
_KW = {"W": 1e-3, "KW": 1.0, "MW": 1e3}
_ISO = re.compile(
    r"^P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_MAX = timedelta(days=366 * 100)  # "P9999Y" means "open-ended"; keep datetimes in range


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
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return ts


def revision_tag(event: dict[str, Any]) -> str:
    """``modificationDateTime`` when the VTN sends it, else a hash of the content."""
    modified = event.get("modificationDateTime")
    if modified:
        return f"mdt:{parse_ts(modified).isoformat()}"
    content = {k: v for k, v in event.items() if k not in ("createdDateTime",)}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def is_newer(tag: str, stored: str) -> bool:
    """A different tag is a new revision; two modification times must also move forward."""
    if tag == stored:
        return False
    if tag.startswith("mdt:") and stored.startswith("mdt:"):
        return parse_ts(tag[4:]) > parse_ts(stored[4:])
    return True


@dataclass
class Mapped3:
    signals: list[DemandResponseSignal] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    reason: str | None = None


def target_zones(
    event: dict[str, Any], ven_name: str | None, zones: ZoneView
) -> tuple[list[str], list[str]]:
    targets = event.get("targets") or []
    if not targets:
        return sorted(zones.all_zones()), []
    found: set[str] = set()
    unknown: list[str] = []
    for target in targets:
        if isinstance(target, str):  # 3.1: plain target names
            pairs = [("GROUP", target)] if zones.is_zone(target) else [("RESOURCE_NAME", target)]
        else:
            pairs = [(str(target.get("type")), v) for v in target.get("values") or []]
        for kind, value in pairs:
            if kind == "GROUP" and zones.is_zone(value):
                found.add(value)
            elif kind == "RESOURCE_NAME" and (zone := zones.zone_of(value)):
                found.add(zone)
            elif kind == "VEN_NAME" and ven_name is not None and value == ven_name:
                found.update(zones.all_zones())
            else:
                unknown.append(f"{kind} {value}")
    return sorted(found), unknown


def _amount(
    kind: str, value: float, units: str | None, levels: dict[int, tuple[str, float]]
) -> Amount | None:
    factor = _KW.get((units or "KW").upper(), 1.0)
    if kind in ("IMPORT_CAPACITY_LIMIT", "DISPATCH_SETPOINT"):
        return limit_amount(value * factor)
    if kind == "DISPATCH_SETPOINT_RELATIVE":
        return reduction_kw_amount(value * factor) if value < 0 else None
    if kind == "SIMPLE":
        return simple_amount(value, levels)
    return None


def _event_priority(event: dict[str, Any]) -> int | None:
    """3.x priority as sent (0 = most urgent); None when absent or unusable."""
    value = event.get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def map_event(
    event: dict[str, Any],
    *,
    modification: int,
    ven_name: str | None,
    zones: ZoneView,
    levels: dict[int, tuple[str, float]],
    priority: int,
    now: datetime,
) -> Mapped3:
    """Map one event at revision ``modification``; a zero-length event maps to nothing."""
    event_id = str(event["id"])
    found, unknown = target_zones(event, ven_name, zones)
    if not found:
        return Mapped3(reason=f"no target maps to a known zone ({', '.join(unknown)})")
    units = {
        d.get("payloadType"): d.get("units")
        for d in event.get("payloadDescriptors") or []
        if isinstance(d, dict)
    }
    period = event.get("intervalPeriod") or {}
    cursor = parse_ts(period["start"]) if period.get("start") else None
    default_duration = parse_iso_duration(period["duration"]) if period.get("duration") else None
    out: list[DemandResponseSignal] = []
    for index, interval in enumerate(event.get("intervals") or []):
        own = interval.get("intervalPeriod") or {}
        start = parse_ts(own["start"]) if own.get("start") else cursor
        duration = parse_iso_duration(own["duration"]) if own.get("duration") else default_duration
        if start is None or duration is None:
            raise ValueError(f"event {event_id}: interval {index} has no start or duration")
        end = start + duration
        cursor = end
        if end <= start:
            continue
        for payload in interval.get("payloads") or []:
            kind = payload.get("type")
            values = payload.get("values") or []
            if not values or not isinstance(values[0], int | float):
                continue
            amount = _amount(kind, float(values[0]), units.get(kind), levels)
            if amount is None:
                continue
            for zone in found:
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
            break  # one curtailment payload per interval
    return Mapped3(signals=out, zones=found, reason=None if out else "nothing to curtail")
