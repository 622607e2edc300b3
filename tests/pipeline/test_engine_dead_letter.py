"""One bad record never costs a batch: it goes to ``ingest.rejected``, the rest is ingested.

Real embedded PostgreSQL, the real migrations, a LocalBus; the engine on a virtual clock.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from prometheus_client import REGISTRY

from pipeline import metrics_names, topics
from pipeline.contracts import RejectedRecord, decode
from tests.pipeline.golden.harness import Harness, ts

pytestmark = pytest.mark.timeout(120)


def rejected_count(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        metrics_names.ENGINE_RECORDS_REJECTED, {"topic": topics.METER_VALUES, "reason": reason}
    )
    return value or 0.0


def sample(station: str, connector: int, kw: float, t: float) -> bytes:
    return json.dumps(
        {
            "station_id": station,
            "connector_id": connector,
            "power_kw": kw,
            "event_ts": ts(t),
            "received_ts": ts(t),
            "ocpp_version": "1.6",
        }
    ).encode()


async def dead_letters(h: Harness) -> list[RejectedRecord]:
    sub = h.bus.subscribe([topics.INGEST_REJECTED])
    out = [decode(RejectedRecord, r.value) for r in await sub.batch(1000, timeout=0) if r.value]
    await sub.close()
    return out


async def test_a_value_the_database_refuses_costs_only_its_own_record(postgres: str) -> None:
    async with Harness(postgres) as h:
        # A check the contract does not know of: the database alone refuses the record.
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute("ALTER TABLE meter_values ADD CONSTRAINT dl_sane CHECK (power_kw < 1000)")
        before = rejected_count("integrity_violation")
        for i in range(5):
            await h.bus.publish(topics.METER_VALUES, f"S{i}", sample(f"S{i}", 1, 7.0, 0))
        await h.bus.publish(topics.METER_VALUES, "BAD", sample("BAD", 1, 5000.0, 0))  # offset 5
        for i in range(5, 10):
            await h.bus.publish(topics.METER_VALUES, f"S{i}", sample(f"S{i}", 1, 7.0, 0))
        await h.tick(1)

        rows = h.query("SELECT station_id FROM meter_values ORDER BY station_id")
        assert [r[0] for r in rows] == [f"S{i}" for i in range(10)]
        (letter,) = await dead_letters(h)
        assert (letter.topic, letter.offset, letter.key) == (topics.METER_VALUES, 5, "BAD")
        assert letter.reason == "integrity_violation" and "dl_sane" in letter.detail
        assert json.loads(letter.value or "")["power_kw"] == 5000.0
        assert rejected_count("integrity_violation") - before == 1
        # The offsets moved past the whole batch: nothing is read twice.
        await h.tick(2)
        offsets = h.query("SELECT topic, next_offset FROM gridctl_engine.offsets")
        assert (topics.METER_VALUES, 11) in offsets
        assert len(await dead_letters(h)) == 1


async def test_a_connector_id_out_of_int32_does_not_skip_the_batch(postgres: str) -> None:
    # The case: connectorId 2**40 made the whole batch of 2,027 readings vanish.
    async with Harness(postgres) as h:
        await h.bus.publish(topics.METER_VALUES, "A", sample("A", 1, 7.0, 0))
        await h.bus.publish(topics.METER_VALUES, "B", sample("B", 2**40, 7.0, 0))
        await h.bus.publish(topics.METER_VALUES, "C", sample("C", 1, 7.0, 0))
        await h.tick(1)
        assert h.query("SELECT station_id FROM meter_values ORDER BY 1") == [("A",), ("C",)]
        (letter,) = await dead_letters(h)
        assert (letter.key, letter.offset) == ("B", 1)
        # The contract may refuse it first (bounds), else the database does.
        assert letter.reason in ("contract", "data_exception")


async def test_undecodable_records_become_dead_letters_too(postgres: str) -> None:
    async with Harness(postgres) as h:
        before = rejected_count("contract")
        await h.bus.publish(topics.METER_VALUES, "A", b"{not json")
        await h.bus.publish(topics.METER_VALUES, "A", sample("A", 1, 7.0, 0))
        await h.tick(1)
        assert h.query("SELECT count(*) FROM meter_values") == [(1,)]
        (letter,) = await dead_letters(h)
        assert (letter.offset, letter.reason, letter.value) == (0, "contract", "{not json")
        assert rejected_count("contract") - before == 1


async def test_a_failure_not_caused_by_data_retries_the_batch_and_rejects_nothing(
    postgres: str,
) -> None:
    async with Harness(postgres) as h:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION dl_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'not now' USING ERRCODE = '42501'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER dl_refuse BEFORE INSERT ON meter_values "
                "FOR EACH ROW EXECUTE FUNCTION dl_refuse()"
            )
        for station in ("A", "B", "C"):
            await h.bus.publish(topics.METER_VALUES, station, sample(station, 1, 7.0, 0))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await h.tick(1)
        await h.engine._recover()  # what the engine's loop does after a failed tick
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute("DROP TRIGGER dl_refuse ON meter_values")
        await h.tick(2)  # the same batch again: the subscription had moved past it
        assert h.query("SELECT station_id FROM meter_values ORDER BY 1") == [
            ("A",),
            ("B",),
            ("C",),
        ]
        assert await dead_letters(h) == []
