"""Out-of-order revisions of one signal, on both buses (issue 12, "counting right").

A newer ``modification`` published before an older one within one tick: the bus delivers
both to a live reader (the in-process bus like Kafka, which never compacts the active
segment), and the engine keeps the highest modification whatever the arrival order
(``ON CONFLICT OVERWRITE WITH VERSION COLUMN(modification)``). Run on the LocalBus and on
the Kafka-protocol test broker (``any_bus``), each under a topic prefix of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from pipeline import topics
from pipeline.bus import Bus
from pipeline.bus.prefixed import PrefixedBus
from pipeline.engine import Engine, VirtualClock, apply_migrations
from tests.pipeline.golden.harness import T0, ts

pytestmark = pytest.mark.timeout(180)


def signal(modification: int, zone_limit_kw: float) -> bytes:
    record = {"signal_id": "sig", "modification": modification, "zone_id": "Z1",
              "signal_type": "CURTAIL", "zone_limit_kw": zone_limit_kw, "start_ts": ts(0),
              "end_ts": ts(600), "received_ts": ts(0)}  # fmt: skip
    return json.dumps(record).encode()


def consumed(dsn: str, topic: str) -> int:
    """Records of ``topic`` the engine has ingested (a fresh topic: offsets from 0)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(next_offset), 0) FROM gridctl_engine.offsets WHERE topic = %s",
            (topic,),
        ).fetchone()
    return int(row[0]) if row else 0


async def settle(engine: Engine, dsn: str, topic: str, records: int) -> None:
    """Tick until the engine has ingested ``records`` of ``topic`` (a Kafka group join
    takes a moment), then once more so every sink saw them."""
    for _ in range(600):
        await engine.run_tick()
        if consumed(dsn, topic) >= records:
            await engine.run_tick()
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"engine ingested {consumed(dsn, topic)} of {records} on {topic}")


async def test_newer_modification_published_first_wins(postgres: str, any_bus: Bus) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    apply_migrations(postgres, overrides={"topic_prefix": prefix})
    bus = PrefixedBus(any_bus, prefix)
    engine = Engine(postgres, any_bus, clock=VirtualClock(T0 + timedelta(seconds=1)),
                    group=f"engine-{prefix}")  # fmt: skip
    # A live reader of the signal topic, there before any revision is published.
    live = bus.subscribe([topics.DEMAND_RESPONSE], group=None, from_beginning=True)
    dr_topic = prefix + topics.DEMAND_RESPONSE
    await engine.start(loop=False)
    try:
        zone = {"station_id": "A", "zone_id": "Z1", "max_station_kw": 22.0,
                "contract_max_kw": 22.0, "phases": 1}  # fmt: skip
        await bus.publish(topics.STATION_ZONES, "A", json.dumps(zone).encode())
        sample = {"station_id": "A", "connector_id": 1, "session_id": "s", "power_kw": 10.0,
                  "event_ts": ts(-5), "received_ts": ts(-5), "ocpp_version": "1.6"}  # fmt: skip
        await bus.publish(topics.METER_VALUES, "A", json.dumps(sample).encode())
        await bus.publish(topics.DEMAND_RESPONSE, "sig", signal(0, 8.0))
        await settle(engine, postgres, dr_topic, 1)
        assert commands(postgres) == [("A", 8.0)]

        # Within one tick: modification 2 (cap 5 kW) is published before modification 1.
        await bus.publish(topics.DEMAND_RESPONSE, "sig", signal(2, 5.0))
        await bus.publish(topics.DEMAND_RESPONSE, "sig", signal(1, 7.0))
        await settle(engine, postgres, dr_topic, 3)
        with psycopg.connect(postgres) as conn:
            kept = conn.execute("SELECT modification, zone_limit_kw FROM dr_signals").fetchall()
        assert kept == [(2, 5.0)]
        assert commands(postgres) == [("A", 5.0)]

        # The live reader got every revision, in the order published.
        seen: list[dict[str, Any]] = []
        for _ in range(200):
            seen += [json.loads(r.value) for r in await live.batch(100, timeout=0.1) if r.value]
            if len(seen) >= 3:
                break
        assert [(s["modification"], s["zone_limit_kw"]) for s in seen] == [
            (0, 8.0), (2, 5.0), (1, 7.0)
        ]  # fmt: skip
    finally:
        await live.close()
        await engine.stop()


def commands(dsn: str) -> list[tuple[str, float]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT station_id, target_power_kw FROM dr_commands ORDER BY station_id"
        ).fetchall()
