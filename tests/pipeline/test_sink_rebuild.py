"""Safe sink rebuilds: a station restored while its sink was being rebuilt gets its
tombstone (embedded: kept emitted state; RisingWave: the reconcile step, here against the
real Kafka-protocol test broker), and ``migrate plan`` says what a rebuild does."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from pipeline.bus import KafkaBus
from pipeline.migrate import Migrator, apply
from pipeline.migrate.sinks import describe, live_keys, reconcile, sink_facts
from tests.pipeline.golden.harness import SINK_TOPICS, Harness

pytestmark = pytest.mark.timeout(180)
MIGRATIONS = Path(__file__).parents[2] / "migrations"
VARS = {"kafka_bootstrap": "embedded"}


async def test_rebuilt_command_sink_tombstones_a_station_restored_meanwhile(
    postgres: str, tmp_path: Path
) -> None:
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    apply(postgres, d, VARS)
    h = Harness(postgres)  # its helpers, on migrations applied by the runner (history kept)
    await h.bus.start()
    await h.engine.start(loop=False)
    h._out = h.bus.subscribe(SINK_TOPICS)
    try:
        await h.station("A", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=3600, zone_limit_kw=5.0)
        await h.tick(1)
        assert h.targets() == {"A": 5.0}
        # R__90 edited; the signal is restored before the rebuild's sink exists again.
        sinks = d / "R__90_sinks.sql"
        sinks.write_text(sinks.read_text() + "\n-- edited\n")
        await h.signal("sig", "Z1", signal_type="RESTORE", start=0, end=3600, modification=1)
        done = Migrator(postgres, d, VARS).up()
        assert done == ["R__90_sinks.sql: rebuild (changed)"]
        await h.tick(2)
        assert h.tombstones == [(2, "A")]
        assert await h.tick(3) == []  # and nothing is sent again
    finally:
        await h.engine.stop()
        await h.bus.stop()


def test_plan_says_what_a_sink_rebuild_does(postgres: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    plan = Migrator(postgres, d, VARS).plan()
    assert "-- what this does to the sinks' topics:" in plan
    assert (
        "--   sink set_charging_profile_sink -> ocpp.commands.set_charging_profile: emitted "
        "state is kept; the next tick sends only changes, tombstones for vanished keys included"
    ) in plan
    rw = describe(
        sink_facts(
            "CREATE SINK a FROM v WITH (connector = 'kafka', topic = 'alerts.grid.dr', "
            "properties.bootstrap.server = 'k:9092', primary_key = 'k') "
            "FORMAT PLAIN ENCODE JSON (force_append_only = 'true')"
        ),  # type: ignore[arg-type]
        "risingwave",
    )
    assert "WARNING snapshot is not 'false'" in rw


async def test_reconcile_tombstones_keys_the_view_no_longer_has(
    postgres: str, kafka: object
) -> None:
    bootstrap = kafka.bootstrap  # type: ignore[attr-defined]
    topic = f"rc{uuid.uuid4().hex[:6]}.ocpp.commands.set_charging_profile"
    bus = KafkaBus(bootstrap, **kafka.bus_config())  # type: ignore[attr-defined]
    await bus.start()
    try:
        bus.create_topics([topic])
        for key in ("S1", "S2", "S3"):
            await bus.publish(topic, key, json.dumps({"station_id": key}).encode())
        await bus.publish(topic, "S3", None)  # already cleared
    finally:
        await bus.stop()
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE TABLE dr_commands (station_id TEXT, target_power_kw FLOAT8)")
        conn.execute("INSERT INTO dr_commands VALUES ('S1', 5.0)")
        facts = sink_facts(
            "CREATE SINK s FROM dr_commands WITH (connector = 'kafka', "
            f"properties.bootstrap.server = '{bootstrap}', topic = '{topic}', "
            "primary_key = 'station_id') FORMAT UPSERT ENCODE JSON KEY ENCODE TEXT"
        )
        assert facts is not None and facts.upsert and facts.key_text
        assert live_keys(bootstrap, topic) == {b"S1", b"S2"}
        assert reconcile(conn, facts, bootstrap) == [b"S2"]
    assert live_keys(bootstrap, topic) == {b"S1"}
