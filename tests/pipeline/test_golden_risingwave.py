"""The same migrations on RisingWave (verbatim) and on the embedded engine give the same
commands for one golden scenario. Skipped here: no RisingWave can run on this machine.

Needs RisingWave and Kafka that see each other, e.g. ``docker compose up -d risingwave
kafka kafka-init`` and ``RISINGWAVE_URL=postgresql://root@127.0.0.1:4566/dev
KAFKA_BOOTSTRAP=127.0.0.1:29092 RISINGWAVE_KAFKA_BOOTSTRAP=kafka:9092``.

RisingWave's NOW() is wall time, so the scenario is stamped relative to now, and uses a
zone limit (no baseline minute to wait for); the embedded engine runs the same records on
a virtual clock set to the same instant.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.bus import KafkaBus, LocalBus
from pipeline.engine import Engine, VirtualClock, apply_migrations
from pipeline.migrate import apply

pytestmark = [pytest.mark.risingwave, pytest.mark.timeout(300)]

RISINGWAVE_URL = os.environ.get("RISINGWAVE_URL")
KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP")


def scenario(prefix: str, now: datetime) -> list[tuple[str, str, dict[str, object]]]:
    def ts(s: float) -> str:
        return (now + timedelta(seconds=s)).isoformat()

    out: list[tuple[str, str, dict[str, object]]] = []
    loads = {"S1": 12.0, "S2": 8.0, "S3": 2.0}
    for sid, kw in loads.items():
        out.append((prefix + "config.station_zones", sid, {
            "station_id": sid, "zone_id": "Z1", "max_station_kw": 22.0,
            "contract_max_kw": 22.0 if sid != "S2" else 7.0, "min_active_kw": 1.4,
        }))  # fmt: skip
        for t in (-30, -20, -10):
            out.append((prefix + "ocpp.meter_values", sid, {
                "station_id": sid, "connector_id": 1, "session_id": f"{sid}-s", "power_kw": kw,
                "event_ts": ts(t), "received_ts": ts(t), "ocpp_version": "2.0.1",
            }))  # fmt: skip
    out.append((prefix + "grid.demand_response", "rw-sig", {
        "signal_id": "rw-sig", "zone_id": "Z1", "signal_type": "CURTAIL", "zone_limit_kw": 11.0,
        "start_ts": ts(-60), "end_ts": ts(3600), "priority": 2, "received_ts": ts(-60),
    }))  # fmt: skip
    return out


async def embedded_commands(dsn: str, records: list, now: datetime) -> dict[str, float]:
    apply_migrations(dsn, overrides={"topic_prefix": "rw."})
    bus = LocalBus()
    await bus.start()
    engine = Engine(dsn, bus, clock=VirtualClock(now))
    await engine.start(loop=False)
    for topic, key, value in records:
        await bus.publish(topic, key, json.dumps(value).encode())
    emits = await engine.run_tick()
    await engine.stop()
    await bus.stop()
    return {e.key: json.loads(e.value)["target_power_kw"] for e in emits if e.value}


async def test_risingwave_and_embedded_agree_on_commands(postgres: str) -> None:
    if not RISINGWAVE_URL or not KAFKA_BOOTSTRAP:
        pytest.skip(
            "needs RISINGWAVE_URL and KAFKA_BOOTSTRAP (RisingWave and Kafka that see each other)"
        )
    prefix = f"rw{uuid.uuid4().hex[:6]}."
    rw_kafka = os.environ.get("RISINGWAVE_KAFKA_BOOTSTRAP", KAFKA_BOOTSTRAP)
    bus = KafkaBus(KAFKA_BOOTSTRAP)
    await bus.start()
    now = datetime.now(UTC)
    records = scenario(prefix, now)
    try:
        for topic in {t for t, _, _ in records} | {prefix + "ocpp.commands.set_charging_profile"}:
            await bus.publish(topic, "warm-up", None)  # create the topics before RisingWave reads
        assert (
            apply(
                RISINGWAVE_URL, "migrations", {"kafka_bootstrap": rw_kafka, "topic_prefix": prefix}
            )
            == "risingwave"
        )
        for topic, key, value in records:
            await bus.publish(topic, key, json.dumps(value).encode())
        out = bus.subscribe([prefix + "ocpp.commands.set_charging_profile"], group=None)
        got: dict[str, float] = {}
        for _ in range(600):
            for r in await out.batch(max_records=100, timeout=0.1):
                if r.key and r.key != "warm-up" and r.value is not None:
                    value = json.loads(r.value)
                    got[value["station_id"]] = float(value["target_power_kw"])
            if len(got) == 3:
                break
            await asyncio.sleep(0.1)
        await out.close()
    finally:
        await bus.stop()
    local = [(t.replace(prefix, "rw."), k, v) for t, k, v in records]
    expected = await embedded_commands(postgres, local, now)
    # Cap 11: floors 1.4 x 3, 6.8 kW shared by load 12 : 8 : 2, clamped and quantised.
    assert got == expected
