"""The DR event report, golden: a replayed 10-minute event with hand-computed numbers.

The replay runs the real pipeline (embedded engine on a real PostgreSQL, virtual clock);
the report is then read through the API (JSON and CSV) and ``gridctl dr report``.

The event, by hand. Zone ``zr``: stations st-1 and st-2, each 11 kW until 12:03, then
6 kW (they comply a minute late). Signal ``golden-1``: limit 12 kW, 12:02-12:12 (10 min).

- baseline: the minute 12:01-12:02, 11 + 11 = 22 kW;
- minute 12:02-12:03: 22 kW (over the cap, reduction 0); nine minutes 12:03-12:12: 12 kW
  (under the cap, reduction 22 - 12 = 10 kW);
- energy: (22 x 1 + 12 x 9) / 60 = 130 / 60 = 2.1667 kWh;
- reduction: (0 x 1 + 10 x 9) / 60 = 1.5 kWh; average 1.5 kWh / (10/60 h) = 9 kW; peak 10 kW;
- compliance: 9 of 10 minutes under the cap = 90 %;
- commands: st-1 Accepted, st-2 NotSupported -> 2 sent, 1 accepted, 1 not supported,
  uncontrollable: st-2.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cli import dr_cmd
from pipeline import topics
from pipeline.replay import read_input, replay
from tests.dr_bridge.live_api import live_api

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def line(topic: str, key: str, value: dict, ts: datetime) -> str:
    return json.dumps({"topic": topic, "key": key, "value": value, "ts": z(ts)})


def event_lines() -> list[str]:
    out = []
    for station in ("st-1", "st-2"):
        out.append(
            line(
                topics.STATION_ZONES,
                station,
                {
                    "station_id": station,
                    "zone_id": "zr",
                    "max_station_kw": 22.0,
                    "contract_max_kw": 22.0,
                    "min_active_kw": 1.4,
                },
                T0,
            )
        )
    t = T0
    while t <= T0 + timedelta(minutes=13):
        kw = 11.0 if t < T0 + timedelta(minutes=3) else 6.0
        for station in ("st-1", "st-2"):
            out.append(
                line(
                    topics.METER_VALUES,
                    station,
                    {
                        "station_id": station,
                        "connector_id": 1,
                        "session_id": f"s-{station}",
                        "power_kw": kw,
                        "event_ts": z(t),
                        "received_ts": z(t),
                        "ocpp_version": "1.6",
                    },
                    t,
                )
            )
        t += timedelta(seconds=10)
    out.append(
        line(
            topics.DEMAND_RESPONSE,
            "golden-1",
            {
                "signal_id": "golden-1",
                "modification": 0,
                "zone_id": "zr",
                "signal_type": "CURTAIL",
                "zone_limit_kw": 12.0,
                "start_ts": z(T0 + timedelta(minutes=2)),
                "end_ts": z(T0 + timedelta(minutes=12)),
                "priority": 1,
                "source": "api",
                "received_ts": z(T0 + timedelta(seconds=90)),
            },
            T0 + timedelta(seconds=90),
        )
    )
    sent = T0 + timedelta(minutes=2, seconds=5)
    for station, status in (("st-1", "Accepted"), ("st-2", "NotSupported")):
        out.append(
            line(
                topics.COMMAND_RESULTS,
                station,
                {
                    "station_id": station,
                    "signal_id": "golden-1",
                    "action": "SetChargingProfile",
                    "status": status,
                    "sent_ts": z(sent),
                    "result_ts": z(sent),
                    "latency_ms": 40.0,
                },
                sent,
            )
        )
    return out


@pytest.fixture
async def replayed(postgres: str) -> str:
    await replay(read_input(event_lines()), io.StringIO(), dsn=postgres, tick=timedelta(seconds=10))
    return postgres


async def test_report_of_a_replayed_ten_minute_event(replayed: str, tmp_path: Path) -> None:
    from dr_bridge import dr_report

    report = await dr_report.fetch(replayed, "golden-1")
    assert report is not None
    totals = {k: v for k, v in report.items() if k != "minutes"}
    assert totals == {
        "signal_id": "golden-1",
        "zone_id": "zr",
        "signal_type": "CURTAIL",
        "priority": 1,
        "source": "api",
        "start_ts": "2026-06-01T12:02:00+00:00",
        "end_ts": "2026-06-01T12:12:00+00:00",
        "baseline_kw": 22.0,
        "baseline_method": "zone load, last whole minute before start",
        "cap_kw": 12.0,
        "minutes_measured": 10,
        "energy_kwh": 2.1667,
        "reduction_kwh": 1.5,
        "avg_reduction_kw": 9.0,
        "peak_reduction_kw": 10.0,
        "compliance_pct": 90.0,
        "commands_sent": 2,
        "commands_accepted": 1,
        "commands_not_supported": 1,
        "commands_rejected": 0,
        "commands_failed": 0,
        "uncontrollable_stations": ["st-2"],
    }
    minutes = [
        (m["minute_start"][11:16], m["load_kw"], m["reduction_kw"], m["under_cap"])
        for m in report["minutes"]
    ]
    assert minutes == [("12:02", 22.0, 0.0, False)] + [
        (f"12:{n:02d}", 12.0, 10.0, True) for n in range(3, 12)
    ]
    assert await dr_report.fetch(replayed, "no-such-signal") is None


def test_api_json_csv_and_the_cli(replayed: str, tmp_path: Path) -> None:
    with live_api(tmp_path, database_url=replayed) as live:
        token = (live.data_dir / "api-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.get(f"{live.url}/v1/signals/golden-1/report", headers=headers)
        assert r.status_code == 200 and r.json()["reduction_kwh"] == 1.5
        r = httpx.get(f"{live.url}/v1/signals/golden-1/report?format=csv", headers=headers)
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 10
        assert {row["reduction_kwh"] for row in rows} == {"1.5"}
        assert [row["load_kw"] for row in rows[:2]] == ["22.0", "12.0"]
        assert httpx.get(f"{live.url}/v1/signals/nope/report", headers=headers).status_code == 404
        assert httpx.get(f"{live.url}/v1/signals/golden-1/report").status_code == 401

        app = typer.Typer()
        dr_cmd.register(app)
        common = ["--api", live.url, "--data-dir", str(live.data_dir)]
        out = CliRunner().invoke(app, ["dr", "report", "golden-1", *common], env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        assert "reduction   1.5 kWh  (average 9 kW, peak 10 kW)" in out.output
        assert "compliance  90 % of the time under the cap" in out.output
        assert "uncontrollable stations  st-2" in out.output
        missing = CliRunner().invoke(app, ["dr", "report", "nope", *common])
        assert missing.exit_code == 1 and "no signal 'nope'" in missing.output
        as_json = CliRunner().invoke(app, ["dr", "report", "golden-1", "--json", *common])
        assert as_json.exit_code == 0, as_json.output
        assert json.loads(as_json.output)["reduction_kwh"] == 1.5


def test_no_database_is_a_clear_503(tmp_path: Path) -> None:
    with live_api(tmp_path) as live:
        token = (live.data_dir / "api-token").read_text().strip()
        r = httpx.get(
            f"{live.url}/v1/signals/x/report", headers={"Authorization": f"Bearer {token}"}
        )
        assert (r.status_code, r.json()["detail"]) == (503, "no engine database configured")
