"""The golden scenarios the conformance harness replays through both engines."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parents[1] / "pipeline" / "golden"
SCENARIOS = sorted(p for p in GOLDEN.glob("scenario_*.jsonl") if ".expected" not in p.name)

#: value fields holding times: shifted with the record so the scenario keeps its shape
TIME_FIELDS = ("event_ts", "received_ts", "start_ts", "end_ts", "sent_ts", "result_ts")


def shifted(path: Path, start: datetime) -> list[dict[str, Any]]:
    """The scenario's lines moved in time so that its first record is at ``start``
    (RisingWave's NOW() is wall time: the scenario must happen now)."""
    lines = [json.loads(t) for t in path.read_text().splitlines() if t.strip()]
    first = min(datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in lines)
    delta = start - first

    def move(text: str) -> str:
        return (datetime.fromisoformat(text.replace("Z", "+00:00")) + delta).isoformat()

    out = []
    for r in lines:
        value = dict(r["value"]) if isinstance(r.get("value"), dict) else r.get("value")
        if isinstance(value, dict):
            for f in TIME_FIELDS:
                if isinstance(value.get(f), str):
                    value[f] = move(value[f])
        out.append({**r, "ts": move(r["ts"]), "value": value})
    return out


def as_jsonl(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) for r in records]


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def end_of(records: list[dict[str, Any]]) -> datetime:
    return max(parse_ts(r["ts"]) for r in records) + timedelta(seconds=0)
