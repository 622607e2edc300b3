"""OpenADR 3 reports requested by an event's ``reportDescriptors``: what is due, and the body.

Pure: the VEN passes the measured load (from :mod:`dr_bridge.telemetry`) in. What we
can report is what the engine measures, per zone (our resources are zones):

- ``USAGE``: energy over each interval, kWh (``readingType`` DIRECT_READ);
- ``DEMAND``: average power over each interval, kW.

Other payload types (``BASELINE``, ``STORAGE_*``, prices...) are refused with a reason.
Timing, from the descriptor: with the defaults (``startInterval`` -1, ``frequency`` -1)
one report once the event's last interval has ended, carrying every interval; otherwise
one report per interval, once that interval has ended. ``repeat`` and forecasts
(``historical`` false) are not supported (refused in the reason). ``aggregate`` true
sums the zones into one ``AGGREGATED_REPORT`` resource. A descriptor's ``targets`` narrow
the zones like an event's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dr_bridge.telemetry import Measured

REPORTABLE = {"USAGE": "KWH", "DEMAND": "KW"}


@dataclass(frozen=True, slots=True)
class Window:
    """One event interval: its id and where it lies."""

    interval_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class DueReport:
    """One report to send: under ``key`` (kept once sent), for these intervals and zones."""

    key: str
    index: int
    payload_type: str
    windows: tuple[Window, ...]
    zones: tuple[str, ...]
    aggregate: bool


def due_reports(
    event: dict[str, Any],
    windows: Sequence[Window],
    zones: Sequence[str],
    now: datetime,
    delay: timedelta,
    narrow: Callable[[list[Any]], list[str]],
) -> tuple[list[DueReport], list[str]]:
    """Reports of ``event`` due at ``now`` (sent or not: the caller skips sent keys),
    and the reasons for descriptors we refuse. ``narrow(targets)`` maps a descriptor's
    targets to zones."""
    out: list[DueReport] = []
    refused: list[str] = []
    ended = [w for w in windows if w.end + delay <= now]
    for index, d in enumerate(event.get("reportDescriptors") or []):
        if not isinstance(d, dict):
            continue
        kind = str(d.get("payloadType"))
        if kind not in REPORTABLE:
            refused.append(f"report {kind}: we measure only USAGE and DEMAND")
            continue
        if d.get("historical") is False:
            refused.append(f"report {kind}: forecasts (historical false) are not supported")
            continue
        chosen = (
            tuple(sorted(set(narrow(d["targets"])) & set(zones)))
            if d.get("targets")
            else tuple(zones)
        )
        if not chosen:
            continue
        aggregate = bool(d.get("aggregate"))
        per_interval = d.get("startInterval", -1) != -1 or d.get("frequency", -1) not in (-1, None)
        base = f"{event['id']}:{index}:{kind}"
        if per_interval:
            first = max(0, int(d.get("startInterval", 0)))
            for w in ended:
                if windows.index(w) >= first:
                    out.append(
                        DueReport(f"{base}:{w.interval_id}", index, kind, (w,), chosen, aggregate)
                    )
        elif windows and len(ended) == len(windows):
            count = int(d.get("numIntervals", -1))
            picked = tuple(windows if count < 0 else windows[-count:])
            out.append(DueReport(f"{base}:all", index, kind, picked, chosen, aggregate))
    return out, refused


def _z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _duration(delta: timedelta) -> str:
    return f"PT{int(delta.total_seconds())}S"


def report_body(
    event: dict[str, Any],
    due: DueReport,
    client_name: str,
    measured: dict[tuple[str, int], Measured | None],
) -> dict[str, Any]:
    """The ``POST /reports`` body; intervals without data are left out, not sent as 0."""
    kind = due.payload_type

    def value(m: Measured) -> float:
        return round(m.kwh if kind == "USAGE" else m.avg_kw, 4)

    def intervals(zones: Sequence[str]) -> list[dict[str, Any]]:
        rows = []
        for w in due.windows:
            got = [measured.get((z, w.interval_id)) for z in zones]
            if any(m is None for m in got):
                continue
            total = sum(value(m) for m in got if m is not None)
            rows.append(
                {
                    "id": w.interval_id,
                    "intervalPeriod": {
                        "start": _z(w.start),
                        "duration": _duration(w.end - w.start),
                    },
                    "payloads": [{"type": kind, "values": [round(total, 4)]}],
                }
            )
        return rows

    groups = (
        [("AGGREGATED_REPORT", list(due.zones))] if due.aggregate else [(z, [z]) for z in due.zones]
    )
    first, last = due.windows[0], due.windows[-1]
    return {
        "objectType": "REPORT",
        "programID": event.get("programID"),
        "eventID": event["id"],
        "clientName": client_name,
        "reportName": f"gridctl {kind} {event['id']}",
        "payloadDescriptors": [
            {
                "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                "payloadType": kind,
                "readingType": "DIRECT_READ",
                "units": REPORTABLE[kind],
            }
        ],
        "resources": [
            {
                "resourceName": name,
                "intervalPeriod": {
                    "start": _z(first.start),
                    "duration": _duration(last.end - first.start),
                },
                "intervals": intervals(zones),
            }
            for name, zones in groups
        ],
    }
