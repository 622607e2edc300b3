"""``gridctl simulate`` as a user runs it: a subprocess against the test-peer CSMS."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.simulator.csms_peer import TestCentralSystem

GRIDCTL = [sys.executable, "-m", "cli.main"]
ROOT = Path(__file__).resolve().parents[2]


async def test_simulate_prints_summaries_and_drives_the_central_system() -> None:
    async with TestCentralSystem() as cs:
        proc = await asyncio.create_subprocess_exec(
            *GRIDCTL,
            "simulate",
            "--url",
            cs.url,
            "--chargers",
            "4",
            "--zones",
            "2",
            "--interval",
            "200ms",
            "--duration",
            "3s",
            "--summary-every",
            "1s",
            "--occupancy",
            "1",
            "--seed",
            "5",
            "--json",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("simulating 4 chargers")
    assert any(line.startswith("t=") and "connected=" in line for line in lines)
    final = json.loads(lines[-1])
    assert final["chargers"] == 4 and final["meter_values"] > 0 and final["call_errors"] == {}
    assert sorted(cs.stations) == ["sim-0001", "sim-0002", "sim-0003", "sim-0004"]
    assert {s.version for s in cs.stations.values()} == {"1.6", "2.0.1"}


async def test_export_stations_writes_the_import_csv(tmp_path: Path) -> None:
    target = tmp_path / "stations.csv"
    proc = await asyncio.create_subprocess_exec(
        *GRIDCTL,
        "simulate",
        "--chargers",
        "3",
        "--export-stations",
        str(target),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    rows = target.read_text().splitlines()
    assert rows[0].startswith("station_id,zone_id,max_station_kw") and len(rows) == 4
