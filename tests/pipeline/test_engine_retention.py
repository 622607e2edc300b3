"""Retention follows the SQL (docs/engines.md): rows go only below what every view still
reads; a view that reads everything keeps everything; no fixed cut-off a long event could
outlive."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from pipeline import topics
from pipeline.bus.local import LocalBus
from pipeline.engine import Engine, VirtualClock, apply_migrations
from tests.pipeline.golden.harness import T0, Harness

pytestmark = pytest.mark.timeout(120)
FIXTURE = Path(__file__).parent / "retention_fixture"


def _sample(t: float) -> bytes:
    ts = (T0 + timedelta(seconds=t)).isoformat()
    return json.dumps(
        {"station_id": "A", "connector_id": 1, "power_kw": 5.0, "event_ts": ts,
         "received_ts": ts, "ocpp_version": "1.6"}
    ).encode()  # fmt: skip


async def _run(dsn: str, directory: Path) -> tuple[list[float], list[float]]:
    """Samples at -3 h, -90 min, -30 min and 0 in one batch, one tick at +1 s: the ages
    (minutes) of the raw rows and of the closed minutes left."""
    apply_migrations(dsn, directory, {"kafka_bootstrap": "embedded"})
    bus = LocalBus()
    await bus.start()
    engine = Engine(dsn, bus, clock=VirtualClock(T0 + timedelta(seconds=1)))
    await engine.start(loop=False)
    try:
        for t in (-3 * 3600, -90 * 60, -30 * 60, 0):
            await bus.publish(topics.METER_VALUES, "A", _sample(t))
        await engine.run_tick()
    finally:
        await engine.stop()
        await bus.stop()
    with psycopg.connect(dsn) as conn:
        raw = conn.execute(
            "SELECT extract(epoch FROM %s - event_ts) / 60 FROM samples ORDER BY 1", (T0,)
        ).fetchall()
        closed = conn.execute(
            "SELECT extract(epoch FROM %s - window_start) / 60 "
            "FROM gridctl_engine.per_minute__closed ORDER BY 1",
            (T0,),
        ).fetchall()
    return [float(r[0]) for r in raw], [float(r[0]) for r in closed]


async def test_rows_go_only_below_what_every_reader_needs(postgres: str) -> None:
    raw, closed = await _run(postgres, FIXTURE)
    # samples: "recent" reads the last hour, "per_minute" the windows not closed yet
    # (watermark -10 s): only -30 min and 0 are still needed.
    assert raw == [0.0, 30.0]
    # closed minutes: "per_minute_recent" reads the last two hours of them: -3 h goes.
    # (The 0 s sample's minute is not closed: the watermark is at -10 s.)
    assert closed == [30.0, 90.0]


async def test_a_reader_of_all_history_keeps_all_of_it(postgres: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    shutil.copytree(FIXTURE, d)
    (d / "R__20_all.sql").write_text(
        "CREATE MATERIALIZED VIEW first_seen AS\n"
        "SELECT station_id, MIN(event_ts) AS first_ts FROM samples GROUP BY station_id;\n"
    )
    raw, _ = await _run(postgres, d)
    assert raw == [0.0, 30.0, 90.0, 180.0]


async def test_a_30_hour_reduction_keeps_its_cap_for_30_hours(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 6.0, -5)
        await h.signal("long", "Z1", start=0, end=30 * 3600, target_reduction_kw=4.0)
        caps = {}
        for hour in (0, 1, 12, 23, 24, 25, 29):
            t = hour * 3600 + 30
            # the chargers keep reporting what they were told (fresh load, compliant)
            for sid in ("A", "B"):
                kw = h.commands[sid]["target_power_kw"] if sid in h.commands else 8.0
                await h.sample(sid, 1, kw, t - 5)
            await h.tick(t)
            rows = h.query("SELECT cap_kw FROM dr_zone_caps WHERE zone_id = 'Z1'")
            caps[hour] = rows[0][0] if rows else None
        # baseline 10 + 6 = 16 kW, minus 4 kW: 12 kW for all 30 hours
        assert caps == {hour: 12.0 for hour in caps}
        assert h.tombstones == []
        await h.tick(30 * 3600 + 60)  # over: the limits are cleared
        assert sorted(k for _, k in h.tombstones) == ["A", "B"]
