"""The embedded engine where RisingWave's meaning is not PostgreSQL's (docs/engines.md):
watermark late-row drops per source, NULL versions ordered first."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from pipeline import metrics_names, topics
from pipeline.engine.rows import is_late, newer_version
from tests.pipeline.golden.harness import T0, Harness, ts

pytestmark = pytest.mark.timeout(120)


def _late_drops() -> float:
    value = REGISTRY.get_sample_value(
        metrics_names.ENGINE_RECORDS_REJECTED, {"topic": topics.METER_VALUES, "reason": "late"}
    )
    return value or 0.0


def test_watermark_rule_is_risingwaves() -> None:
    mark = T0
    assert not is_late(T0 - timedelta(seconds=1), None)  # no watermark yet: all pass
    assert not is_late(None, None)
    assert not is_late(T0, mark)  # equal passes (event_time >= watermark)
    assert is_late(T0 - timedelta(microseconds=1), mark)
    assert is_late(None, mark)  # NULL fails the comparison


def test_null_version_sorts_first_and_equal_overwrites() -> None:
    assert newer_version(None, None)
    assert newer_version(None, 0)
    assert not newer_version(0, None)
    assert newer_version(3, 3)
    assert not newer_version(3, 2)


async def test_sample_older_than_the_watermark_is_ignored_by_every_view(postgres: str) -> None:
    async with Harness(postgres) as h:  # watermark_seconds = 10
        await h.station("A", "Z1", contract_kw=13.0)
        await h.sample("A", 1, 5.0, 0)
        await h.sample("A", 1, 5.0, 100)  # watermark: 100 - 10 = 90 s
        await h.tick(101)
        before = _late_drops()
        await h.sample("A", 1, 50.0, 89)  # 1 s below the watermark: dropped
        await h.sample("A", 2, 7.0, 90)  # at the watermark: kept
        await h.tick(102)
        assert _late_drops() - before == 1
        # Dropped for the views, not lost: it is on the dead-letter topic with its reason.
        letters = h.bus.subscribe([topics.INGEST_REJECTED])
        dead = [json.loads(r.value) for r in await letters.batch(100, timeout=0) if r.value]
        assert [(d["reason"], json.loads(d["value"])["power_kw"]) for d in dead] == [("late", 50.0)]
        assert h.query("SELECT connector_id, power_kw FROM meter_values ORDER BY 1, 2") == [
            (1, 5.0),
            (1, 5.0),
            (2, 7.0),
        ]
        # The current load is the two kept latest samples: 5 + 7.
        assert h.query("SELECT station_id, load_kw FROM station_load") == [("A", 12.0)]
        # The minute 60-120 s never saw the 50 kW sample: 5 + 7 kW, within the 13 kW contract.
        await h.sample("A", 1, 5.0, 200)  # closes the minutes up to 190 s
        await h.tick(201)
        assert [a for a in h.alerts if a["alert_type"] == "station_over_contract"] == []


async def test_watermark_survives_an_engine_restart(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.sample("A", 1, 5.0, 100)
        await h.tick(101)
        await h.engine.stop()
        from pipeline.engine import Engine

        h.engine = Engine(postgres, h.bus, clock=h.clock)
        await h.engine.start(loop=False)
        await h.sample("A", 1, 50.0, 80)  # below the persisted watermark (90 s)
        await h.tick(102)
        assert h.query("SELECT power_kw FROM meter_values") == [(5.0,)]


async def test_revision_without_a_version_does_not_replace_a_versioned_one(
    postgres: str,
) -> None:
    async with Harness(postgres) as h:
        await h.signal("sig", "Z1", start=0, end=600, modification=0, zone_limit_kw=8.0)
        await h.tick(1)
        # A revision without "modification": NULL on RisingWave, below version 0.
        late = {
            "signal_id": "sig",
            "zone_id": "Z1",
            "signal_type": "CURTAIL",
            "zone_limit_kw": 2.0,
            "start_ts": ts(0),
            "end_ts": ts(600),
            "priority": 2,
            "received_ts": ts(2),
        }
        await h.bus.publish(topics.DEMAND_RESPONSE, "sig", json.dumps(late).encode())
        await h.tick(2)
        assert h.query("SELECT modification, zone_limit_kw FROM dr_signals") == [(0, 8.0)]
