"""The engine runtime: restarts neither repeat nor drop sink records, bad records are
skipped and counted, upsert tombstones delete, queries run (retention:
test_engine_retention.py)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from cli.query_cmd import available, run_query
from pipeline import metrics_names, topics
from pipeline.bus.base import Message, PublishError
from pipeline.engine import Engine
from tests.pipeline.golden.harness import T0, Harness

pytestmark = pytest.mark.timeout(120)


async def _capped_zone(h: Harness) -> None:
    """SHED 8 kW over single-phase stations drawing 10 and 6 kW: each gets its 1.4 kW
    minimum, the 5.2 kW left by demand 10 : 6 -> 4.65 and 3.35, quantised 4.6 and 3.3 (a
    zone limit of 4 kW: 1.4 + 0.75 -> 2.1 and 1.4 + 0.45 -> 1.8)."""
    await h.station("A", "Z1", phases=1)
    await h.station("B", "Z1", phases=1)
    await h.sample("A", 1, 10.0, -5)
    await h.sample("B", 1, 6.0, -5)
    await h.signal("sig", "Z1", "SHED", start=0, end=600, zone_limit_kw=8.0)


async def test_restart_neither_repeats_nor_drops(postgres: str) -> None:
    async with Harness(postgres) as h:
        await _capped_zone(h)
        await h.tick(1)
        assert h.targets() == {"A": 4.6, "B": 3.3}
        await h.engine.stop()
        # A second engine on the same database: the emitted state was persisted, so
        # nothing is sent again.
        h.engine = Engine(postgres, h.bus, clock=h.clock)
        await h.engine.start(loop=False)
        assert await h.tick(2) == []
        # A change after the restart is sent, once.
        await h.signal("sig", "Z1", "SHED", start=0, end=600, modification=1, zone_limit_kw=4.0)
        sent = await h.tick(3)
        assert [(k, v["target_power_kw"]) for _, k, v in sent if v] == [("A", 2.1), ("B", 1.8)]
        assert await h.tick(4) == []


async def test_outbox_survives_a_failed_publish_and_is_sent_once(postgres: str) -> None:
    async with Harness(postgres) as h:
        await _capped_zone(h)
        await h.tick(1)
        await h.signal("sig", "Z1", "SHED", start=0, end=600, modification=1, zone_limit_kw=4.0)
        await h.bus.stop()  # the bus goes down: publishing fails (a real LocalBus, stopped)
        h.clock.set(T0 + timedelta(seconds=2))
        with pytest.raises(PublishError):
            await h.engine.run_tick()
        with psycopg.connect(postgres) as conn:
            pending = conn.execute(
                "SELECT key, value::jsonb->>'target_power_kw' FROM gridctl_engine.outbox "
                "WHERE topic = 'ocpp.commands.set_charging_profile' ORDER BY seq"
            ).fetchall()
        assert pending == [("A", "2.1"), ("B", "1.8")]
        await h.engine.stop()
        await h.bus.start()
        # Restart: the outbox goes out first, exactly once; the next tick adds nothing.
        h.engine = Engine(postgres, h.bus, clock=h.clock)
        await h.engine.start(loop=False)
        sent = await h.tick(3)
        assert [(k, v["target_power_kw"]) for _, k, v in sent if v] == [("A", 2.1), ("B", 1.8)]
        assert await h.tick(4) == []


async def test_a_tick_publishes_the_commands_before_it_applies_the_other_sinks(
    postgres: str,
) -> None:
    """The first tick of an event also freezes every station's baseline and raises alerts;
    at 10,000 stations diffing and publishing those first put the first SetChargingProfile
    ~1 s later (bench/dr_latency.py). The commands go out in a batch of their own, before
    any other sink has written its outbox rows; the rest follows in the same tick."""
    async with Harness(postgres) as h:
        await _capped_zone(h)
        batches: list[tuple[set[str], list[tuple[str]]]] = []
        publish_many = h.bus.publish_many

        async def spy(messages: list[Message], **kwargs: Any) -> None:
            with psycopg.connect(postgres) as conn:
                written = conn.execute(
                    "SELECT DISTINCT topic FROM gridctl_engine.outbox ORDER BY 1"
                ).fetchall()
            batches.append(({m.topic for m in messages}, written))
            await publish_many(messages, **kwargs)

        h.bus.publish_many = spy  # type: ignore[method-assign]  # a spy on the real bus
        await h.tick(1)
        assert batches[0] == (
            {topics.SET_CHARGING_PROFILE},
            [(topics.SET_CHARGING_PROFILE,)],
        )
        assert len(batches) == 2 and topics.DR_BASELINES in batches[1][0]
        assert topics.SET_CHARGING_PROFILE not in batches[1][0]
        assert h.targets() == {"A": 4.6, "B": 3.3}
        batches.clear()
        await h.tick(2)  # nothing changed: no batch at all
        assert batches == []


async def test_each_tick_says_where_its_time_went_at_debug(
    postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Harness(postgres) as h:
        await _capped_zone(h)
        with caplog.at_level(logging.DEBUG, logger="pipeline.engine.runtime"):
            await h.tick(1)
        lines = [r.getMessage() for r in caplog.records if "engine tick" in r.getMessage()]
        assert len(lines) == 1, lines
        line = lines[0]
        # 2 stations, their 2 samples and the signal ingested; 2 commands among what was sent
        assert "5 records ingested" in line and "(2 commands)" in line, line
        for stage in ("ingest", "views", "sink_diff", "publish", "outbox"):
            assert f"{stage} 0." in line, line
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pipeline.engine.runtime"):
            await h.tick(2)
        assert not [r for r in caplog.records if "engine tick" in r.getMessage()]


def _dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        metrics_names.ENGINE_RECORDS_REJECTED, {"topic": topics.METER_VALUES, "reason": reason}
    )
    return value or 0.0


async def test_bad_records_are_skipped_and_counted(postgres: str) -> None:
    async with Harness(postgres) as h:
        before = _dropped("contract")
        await h.bus.publish(topics.METER_VALUES, "A", b"{not json")
        bad = {"station_id": "A", "connector_id": 1, "power_kw": 3.0, "event_ts": "x"}
        await h.bus.publish(topics.METER_VALUES, "A", json.dumps(bad).encode())
        await h.sample("A", 1, 7.0, 0)
        await h.tick(1)
        assert _dropped("contract") - before == 2  # bad JSON and a bad field, not fatal
        assert h.query("SELECT station_id, power_kw FROM meter_values") == [("A", 7.0)]


async def test_station_tombstone_deletes(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        await h.sample("A", 1, 7.0, 0)
        await h.tick(1)
        await h.remove_station("A")
        await h.tick(2)
        assert h.query("SELECT station_id FROM station_zones") == [("B",)]
        assert h.query("SELECT zone_id, stations FROM zone_load") == [("Z1", 1)]


async def test_dashboards_read_what_the_last_tick_computed(postgres: str) -> None:
    """A view the tick maintains (a sink reads it) is read from its cache, as a RisingWave
    MV holds the last barrier's result; a dashboard-only view (zone_load) is computed
    when read, over the maintained views below it (station_load)."""
    async with Harness(postgres) as h:
        await _capped_zone(h)
        await h.tick(1)
        caps = "SELECT zone_id, cap_kw FROM dr_zone_caps"
        load = "SELECT zone_id, load_kw FROM zone_load"
        assert h.query(caps) == [("Z1", 8.0)]
        assert h.query(load) == [("Z1", 16.0)]  # 10 + 6 kW
        # Behind the engine's back (no tick has seen it yet), the signal goes.
        with psycopg.connect(postgres) as conn:
            conn.execute("DELETE FROM dr_signals")
        assert h.query(caps) == [("Z1", 8.0)]  # maintained: the last tick's result
        await h.tick(2)
        assert h.query(caps) == []
        assert h.query(load) == [("Z1", 16.0)]


async def test_noc_queries_run(postgres: str) -> None:
    async with Harness(postgres) as h:
        await _capped_zone(h)
        await h.tick(1)
        assert set(available()) >= {
            "zone_utilisation",
            "active_dr",
            "station_limits",
            "recent_alerts",
            "ack_rate",
        }
        cols, rows = run_query(postgres, "active_dr")
        got = dict(zip(cols, rows[0], strict=True))
        assert (got["zone_id"], got["cap_kw"], got["load_kw"], got["compliance"]) == (
            "Z1",
            8.0,
            16.0,
            "over cap",
        )
        cols, rows = run_query(postgres, "station_limits")
        assert [(r[0], r[cols.index("target_kw")]) for r in rows] == [("A", 4.6), ("B", 3.3)]
        cols, rows = run_query(postgres, "zone_utilisation")
        assert rows[0][cols.index("utilisation_pct")] == pytest.approx(36.4)
        for name in ("recent_alerts", "ack_rate"):
            cols, _ = run_query(postgres, name)
            assert cols


async def test_outbox_retried_by_the_next_tick_without_new_decisions(postgres: str) -> None:
    async with Harness(postgres) as h:
        await _capped_zone(h)
        await h.bus.stop()  # the bus is down when the first commands are decided
        with pytest.raises(PublishError):
            await h.engine.run_tick()
        await h.bus.start()
        sent = await h.tick(2)  # nothing new to decide, but the outbox goes out now
        assert [(k, v["target_power_kw"]) for _, k, v in sent if v] == [("A", 4.6), ("B", 3.3)]
        assert await h.tick(3) == []
        assert h.query("SELECT count(*) FROM gridctl_engine.outbox") == [(0,)]


async def test_incremental_latest_per_connector_equals_full_recomputation(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.sample("A", 1, 1.0, 0)
        await h.sample("B", 1, 2.0, 5)
        await h.tick(6)
        await h.sample("A", 1, 3.0, 3)  # late, newer than A's latest, older than B's
        await h.sample("A", 1, 9.0, -10)  # late and older than A's latest: no effect
        await h.sample("A", 2, 4.0, 8)
        latest = (
            "SELECT station_id, connector_id, power_kw FROM gridctl_engine.connector_latest__{} "
            "ORDER BY 1, 2"
        )
        seen = {}
        for t in (10, 60, 124, 126, 200):  # samples expire after 120 s
            await h.tick(t)
            seen[t] = h.query(latest.format("cache"))
            assert seen[t] == h.query(latest.format("live")), t
        assert seen[10] == [("A", 1, 3.0), ("A", 2, 4.0), ("B", 1, 2.0)]
        assert seen[124] == [("A", 2, 4.0), ("B", 1, 2.0)]  # A/1 stamped 3 s is stale now
        assert seen[200] == []


async def test_views_in_the_tick_read_the_caches_below_them(postgres: str) -> None:
    """Inside a tick a view reads what the tick already stored of the views below it
    (their ``__tick`` relations), tables as themselves; the views dashboards read compute
    everything. Reading the views' own definitions nested every plan below (planning
    dr_station_targets took ~0.6 s at 5,000 stations) and evaluated each view again."""
    async with Harness(postgres) as h:

        def definition(view: str) -> str:
            ((sql,),) = h.query(f"SELECT pg_get_viewdef('gridctl_engine.{view}'::regclass)")
            return str(sql)

        shares = definition("dr_zone_shares__eval")
        assert "gridctl_engine.dr_station_bounds__tick" in shares
        bounds = definition("dr_station_bounds__eval")
        assert "(station_zones z\n" in bounds  # a table, read as itself
        assert "gridctl_engine.dr_zone_caps__tick" in bounds
        assert "gridctl_engine.station_limits__tick" in bounds  # a plain view's tick form
        assert "gridctl_engine.dr_station_targets__tick" in definition("dr_commands__tick")
        live = definition("dr_zone_shares__live")
        assert "FROM dr_station_bounds" in live and "__tick" not in live
        # and the tick computes the same rows as the views do
        await _capped_zone(h)
        await h.tick(1)
        assert h.targets() == {"A": 4.6, "B": 3.3}
        commands = "SELECT station_id, target_power_kw FROM {} ORDER BY 1"
        assert h.query(commands.format("dr_commands")) == h.query(
            commands.format("gridctl_engine.dr_commands__tick")
        )


async def test_the_engine_plans_each_tick_against_the_data_it_has(postgres: str) -> None:
    """No prepared plans on the engine's connection: a plan prepared while a signal's
    caches were empty nested loops over them once an event filled them (at 10k
    connectors the first CURTAIL after a quiet spell: 1.6 s of CPU, the next tick 4.1 s;
    planned fresh, 0.66 s and 0.40 s; bench/engine_tick.py --quiet). psycopg prepares a
    statement on its 5th run, so ten quiet ticks would have prepared every view's."""
    async with Harness(postgres) as h:
        await h.station("A", "Z1", phases=1)
        await h.station("B", "Z1", phases=1)
        for t in range(1, 11):
            await h.sample("A", 1, 10.0, t)
            await h.sample("B", 1, 6.0, t)
            await h.tick(t)
        conn = h.engine._require()
        cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
        assert await cur.fetchone() == (0,)
        await conn.rollback()
        # The first event after the quiet spell, as _capped_zone's: 4.6 and 3.3 kW.
        await h.signal("sig", "Z1", "SHED", start=11, end=600, zone_limit_kw=8.0)
        await h.tick(11)
        assert h.targets() == {"A": 4.6, "B": 3.3}
