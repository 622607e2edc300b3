"""Write the golden replay input ``scenario_basic.jsonl`` (run once; the file is checked in).

Two zones, four stations, samples every 10 s for 15 minutes; a CURTAIL on Z1 by 30 % that
is modified, a SHED on Z2 with a zone limit that ends naturally, a RESTORE of the Z1
signal, a station over its contract, command results.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")


def ts(s: float) -> str:
    return (T0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")


def main() -> None:
    lines: list[dict] = []

    def add(t: float, topic: str, key: str, value: dict | None) -> None:
        lines.append({"topic": topic, "key": key, "value": value, "ts": ts(t)})

    stations = {
        "S1": ("Z1", 22.0, 22.0, 2.0),
        "S2": ("Z1", 11.0, 7.0, 2.0),
        "S3": ("Z2", 22.0, 22.0, 1.0),
        "S4": ("Z2", 22.0, 22.0, 1.0),
    }
    for sid, (zone, mx, contract, mn) in stations.items():
        add(0, "config.station_zones", sid, {
            "station_id": sid, "zone_id": zone, "max_station_kw": mx,
            "contract_max_kw": contract, "min_active_kw": mn,
        })  # fmt: skip
    loads = {"S1": [9.0, 3.0], "S2": [8.0], "S3": [6.0], "S4": [4.0, 4.0]}
    for t in range(0, 900, 10):
        for sid, conns in loads.items():
            for c, kw in enumerate(conns, 1):
                add(t, "ocpp.meter_values", sid, {
                    "station_id": sid, "connector_id": c, "session_id": f"{sid}-{c}",
                    "power_kw": kw, "event_ts": ts(t), "received_ts": ts(t + 1),
                    "ocpp_version": "2.0.1",
                })  # fmt: skip
    sig = {"signal_id": "dr-1", "zone_id": "Z1", "signal_type": "CURTAIL",
           "start_ts": ts(120), "end_ts": ts(1800), "priority": 2, "source": "api"}  # fmt: skip
    add(
        60,
        "grid.demand_response",
        "dr-1",
        {**sig, "modification": 0, "target_reduction_pct": 30.0, "received_ts": ts(60)},
    )
    add(
        300,
        "grid.demand_response",
        "dr-1",
        {**sig, "modification": 1, "target_reduction_pct": 50.0, "received_ts": ts(300)},
    )
    add(
        600,
        "grid.demand_response",
        "dr-1",
        {**sig, "modification": 2, "signal_type": "RESTORE", "received_ts": ts(600)},
    )
    add(100, "grid.demand_response", "dr-2", {
        "signal_id": "dr-2", "zone_id": "Z2", "signal_type": "SHED", "modification": 0,
        "zone_limit_kw": 5.0, "start_ts": ts(150), "end_ts": ts(450), "priority": 1,
        "source": "openadr", "received_ts": ts(100),
    })  # fmt: skip
    for t in range(130, 400, 30):
        for sid in ("S1", "S2"):
            add(t, "ocpp.command_results", sid, {
                "station_id": sid, "signal_id": "dr-1", "action": "SetChargingProfile",
                "status": "Accepted" if sid == "S1" else "Timeout",
                "sent_ts": ts(t - 1), "result_ts": ts(t), "latency_ms": 120.0,
            })  # fmt: skip
    out = Path(__file__).with_name("scenario_basic.jsonl")
    out.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


if __name__ == "__main__":
    main()
