"""The RisingWave conformance harness: the migrations applied verbatim to RisingWave
v3.0.x, the golden scenarios replayed through Kafka in real time, the command and alert
topics diffed (pipeline.conformance) against the embedded engine's replay of the same
records. ``make test-risingwave`` brings up RisingWave and Kafka (compose.yaml) and runs
it; without them every test here is skipped with the reason.

Environment (what ``make test-risingwave`` sets): ``RISINGWAVE_URL`` (pgwire),
``KAFKA_BOOTSTRAP`` (Kafka as this process reaches it), ``RISINGWAVE_KAFKA_BOOTSTRAP``
(Kafka as RisingWave reaches it, default the same).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline import topics
from pipeline.conformance import diff, outcome, read_jsonl
from pipeline.migrate import apply
from pipeline.replay import read_input, replay
from tests.conformance.scenarios import SCENARIOS, as_jsonl, end_of, parse_ts, shifted

pytestmark = [pytest.mark.risingwave, pytest.mark.timeout(1800)]

RISINGWAVE_URL = os.environ.get("RISINGWAVE_URL")
KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP")
RW_KAFKA = os.environ.get("RISINGWAVE_KAFKA_BOOTSTRAP", KAFKA_BOOTSTRAP or "")
MIGRATIONS = Path(__file__).parents[2] / "migrations"
SINK_TOPICS = (topics.SET_CHARGING_PROFILE, topics.ALERTS_OVERLOAD, topics.ALERTS_DR)
#: after the last input: the last minute's window closes (watermark), sinks flush
SETTLE = timedelta(seconds=90)


def _need_risingwave() -> None:
    if not RISINGWAVE_URL or not KAFKA_BOOTSTRAP:
        pytest.skip(
            "no RisingWave: set RISINGWAVE_URL and KAFKA_BOOTSTRAP (make test-risingwave "
            "starts RisingWave v3.0.2 and Kafka from compose.yaml; needs Docker)"
        )


async def _bus(prefix: str) -> Any:
    from pipeline.bus import KafkaBus
    from pipeline.bus.prefixed import PrefixedBus

    bus = PrefixedBus(KafkaBus(KAFKA_BOOTSTRAP or ""), prefix)
    await bus.start()  # creates the prefixed topics (compacted where upsert)
    return bus


async def _play(bus: Any, records: list[dict[str, Any]]) -> None:
    """Publish each record when the wall clock reaches its ``ts`` (RisingWave's NOW())."""
    for r in records:
        wait = (parse_ts(r["ts"]) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        value = None if r["value"] is None else json.dumps(r["value"]).encode()
        await bus.publish(r["topic"], r["key"], value)


async def _read_sinks(bus: Any) -> list[dict[str, Any]]:
    sub = bus.subscribe(list(SINK_TOPICS), group=None, from_beginning=True)
    out: list[dict[str, Any]] = []
    idle = 0
    while idle < 20:
        batch = await sub.batch(max_records=10_000, timeout=0.5)
        idle = 0 if batch else idle + 1
        for rec in batch:
            value = None if rec.value is None else json.loads(rec.value)
            out.append({"topic": rec.topic, "key": rec.key, "value": value})
    await sub.close()
    return out


async def _embedded(records: list[dict[str, Any]], until: datetime) -> list[dict[str, Any]]:
    out = io.StringIO()
    await replay(read_input(as_jsonl(records)), out, tick=timedelta(seconds=1), until=until)
    return read_jsonl(out.getvalue().splitlines())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
async def test_risingwave_and_embedded_mean_the_same(scenario: Path) -> None:
    _need_risingwave()
    prefix = f"conf{uuid.uuid4().hex[:6]}."
    records = shifted(scenario, datetime.now(UTC) + timedelta(seconds=20))
    until = end_of(records) + SETTLE
    bus = await _bus(prefix)
    try:
        values = {"kafka_bootstrap": RW_KAFKA, "topic_prefix": prefix,
                  "reconcile_bootstrap": KAFKA_BOOTSTRAP or ""}  # fmt: skip
        apply(RISINGWAVE_URL or "", MIGRATIONS, values)
        await _play(bus, records)
        await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()))
        got = await _read_sinks(bus)
    finally:
        await bus.stop()
    expected = await _embedded(records, until)
    assert diff(outcome(expected), outcome(got)) == []


async def test_sink_rebuild_tombstones_a_station_restored_meanwhile(tmp_path: Path) -> None:
    """``migrate up`` of an edited R__90_sinks.sql while a station is limited and its
    signal is restored in between: the command topic ends with a tombstone for it."""
    _need_risingwave()
    prefix = f"conf{uuid.uuid4().hex[:6]}."
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations)
    # reconcile runs here, where Kafka is KAFKA_BOOTSTRAP (RisingWave reaches it otherwise)
    values = {"kafka_bootstrap": RW_KAFKA, "topic_prefix": prefix,
              "reconcile_bootstrap": KAFKA_BOOTSTRAP or ""}  # fmt: skip
    now = datetime.now(UTC)
    bus = await _bus(prefix)
    try:
        apply(RISINGWAVE_URL or "", migrations, values)
        zone = {"station_id": "S1", "zone_id": "Z1", "max_station_kw": 22.0,
                "contract_max_kw": 22.0, "min_active_kw": 1.4}  # fmt: skip
        await bus.publish(topics.STATION_ZONES, "S1", json.dumps(zone).encode())
        sample = {"station_id": "S1", "connector_id": 1, "session_id": "s", "power_kw": 10.0,
                  "event_ts": now.isoformat(), "received_ts": now.isoformat(),
                  "ocpp_version": "2.0.1"}  # fmt: skip
        await bus.publish(topics.METER_VALUES, "S1", json.dumps(sample).encode())
        signal = {"signal_id": "rb", "modification": 0, "zone_id": "Z1",
                  "signal_type": "CURTAIL", "zone_limit_kw": 5.0, "start_ts": now.isoformat(),
                  "end_ts": (now + timedelta(hours=1)).isoformat(), "priority": 2,
                  "received_ts": now.isoformat()}  # fmt: skip
        await bus.publish(topics.DEMAND_RESPONSE, "rb", json.dumps(signal).encode())
        await asyncio.sleep(10)
        assert outcome(await _read_sinks(bus)).commands.get("S1"), "S1 is limited first"
        sinks = migrations / "R__90_sinks.sql"
        sinks.write_text(sinks.read_text() + "\n-- edited: rebuild the sinks\n")
        # The rebuild's drop, then the restore while no sink exists, then the rest of it.
        with psycopg.connect(RISINGWAVE_URL or "", autocommit=True) as conn:
            conn.execute("DROP SINK IF EXISTS set_charging_profile_sink")
        restore = {**signal, "modification": 1, "signal_type": "RESTORE", "zone_limit_kw": None}
        await bus.publish(topics.DEMAND_RESPONSE, "rb", json.dumps(restore).encode())
        await asyncio.sleep(5)
        apply(RISINGWAVE_URL or "", migrations, values)  # re-creates the sinks, reconciles
        await asyncio.sleep(10)
        result = outcome(await _read_sinks(bus))
    finally:
        await bus.stop()
    assert result.commands.get("S1", "absent") is None
    assert "S1" in result.cleared
