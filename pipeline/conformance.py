"""Do two runs of the pipeline mean the same to the rest of gridctl? (RisingWave vs embedded)

The engines deliver differently and both correctly: RisingWave emits every barrier (~1 s)
and at least once, the embedded engine once per tick; RisingWave's NUMERIC is a JSON
string, its timestamps may carry fractions; its PLAIN sinks key records by a JSON object,
the embedded engine by its own text. None of that changes what a charger or an operator
gets. What must agree:

- commands: for every station, the limit it ends with (a value, or cleared by a
  tombstone), and the set of stations that were ever cleared;
- alerts: which alerts were raised (identified by their own fields, not the Kafka key),
  each exactly once, with the same numbers.

:func:`outcome` folds a run's sink records (replay's JSONL lines, or records read back from
Kafka) into an :class:`Outcome`; :func:`diff` lists every disagreement in words. The
conformance harness (``make test-risingwave``) replays the golden scenarios through both
engines and asserts an empty diff; the diff itself is tested on embedded runs.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline import topics

#: fields that identify an alert (its episode or window), whatever the Kafka key says
ALERT_IDENTITY = ("alert_type", "zone_id", "station_id", "signal_id", "window_start")
#: command fields that do not change the charger's profile: compared by nobody
COMMAND_IGNORED = frozenset({"command_ts"})


@dataclass
class Outcome:
    """What one run told the rest of gridctl."""

    commands: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    cleared: set[str] = field(default_factory=set)
    alerts: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    alert_counts: Counter[tuple[Any, ...]] = field(default_factory=Counter)


def _norm(value: Any) -> Any:
    """Numbers (also RisingWave's NUMERIC strings) as floats, timestamps as UTC datetimes."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return ts.astimezone(UTC) if ts.tzinfo else ts
    return value


def _normed(value: Mapping[str, Any], ignored: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {k: _norm(v) for k, v in value.items() if k not in ignored}


def _topic_of(topic: str) -> str | None:
    for name in (topics.SET_CHARGING_PROFILE, topics.ALERTS_OVERLOAD, topics.ALERTS_DR):
        if topic == name or topic.endswith(name):
            return name
    return None


def outcome(records: Iterable[Mapping[str, Any]]) -> Outcome:
    """Fold sink records (``{"topic", "key", "value"}``, in the order they were sent)."""
    out = Outcome()
    for record in records:
        topic = _topic_of(str(record.get("topic", "")))
        value = record.get("value")
        if isinstance(value, str | bytes):
            value = json.loads(value)
        if topic == topics.SET_CHARGING_PROFILE:
            key = str(record.get("key"))
            if value is None:
                out.commands[key] = None
                out.cleared.add(key)
            else:
                out.commands[key] = _normed(value, COMMAND_IGNORED)
        elif topic is not None and value is not None:
            alert = _normed(value)
            ident = (topic, *(alert.get(f) for f in ALERT_IDENTITY))
            out.alerts[ident] = alert
            out.alert_counts[ident] += 1
    return out


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=tolerance)
    return bool(a == b)


def _fields(a: Mapping[str, Any], b: Mapping[str, Any], tolerance: float) -> list[str]:
    return [
        f"{k}: {a.get(k)!r} vs {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if not _same(a.get(k), b.get(k), tolerance)
    ]


def _say(command: object) -> str:
    if command is None:
        return "cleared"
    return "never sent" if command == "absent" else "a limit"


def diff(expected: Outcome, got: Outcome, *, tolerance: float = 1e-6) -> list[str]:
    """Every way ``got`` disagrees with ``expected``, one sentence each (empty: agree)."""
    out: list[str] = []
    for key in sorted(set(expected.commands) | set(got.commands)):
        a, b = expected.commands.get(key, "absent"), got.commands.get(key, "absent")
        if isinstance(a, dict) and isinstance(b, dict):
            bad = _fields(a, b, tolerance)
            if bad:
                out.append(f"command {key}: " + "; ".join(bad))
        elif a != b:
            out.append(f"command {key}: expected {_say(a)}, got {_say(b)}")
    for key in sorted(expected.cleared ^ got.cleared):
        side = "expected" if key in expected.cleared else "got"
        out.append(f"command {key}: a tombstone only in the {side} run")
    for ident in sorted(set(expected.alerts) | set(got.alerts), key=repr):
        name = "/".join(str(p) for p in ident if p is not None)
        if ident not in got.alerts:
            out.append(f"alert {name}: missing")
        elif ident not in expected.alerts:
            out.append(f"alert {name}: not expected")
        else:
            bad = _fields(expected.alerts[ident], got.alerts[ident], tolerance)
            if bad:
                out.append(f"alert {name}: " + "; ".join(bad))
        if got.alert_counts.get(ident, 0) > 1:
            out.append(f"alert {name}: emitted {got.alert_counts[ident]} times")
    return out


def read_jsonl(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Replay output lines (``{"topic", "key", "value", "ts"}``) as records."""
    return [json.loads(line) for line in lines if line.strip()]
