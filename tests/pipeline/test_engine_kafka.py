"""The engine on a real Kafka-protocol broker (the ``kafka`` fixture: Tansu here).

Topics on the session's broker are shared with other tests, so the migrations run with a
unique ``topic_prefix`` and the engine with a unique consumer group.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest

from pipeline.bus import KafkaBus
from pipeline.engine import Engine, VirtualClock, apply_migrations
from tests.fixtures.kafka import KafkaBroker
from tests.pipeline.golden.harness import T0, ts

pytestmark = pytest.mark.timeout(180)


async def test_engine_on_kafka_ingests_and_emits_commands(
    postgres: str, kafka: KafkaBroker
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    apply_migrations(postgres, overrides={"topic_prefix": prefix})
    bus = KafkaBus(kafka.bootstrap, **kafka.bus_config())
    await bus.start()
    clock = VirtualClock(T0 + timedelta(seconds=1))
    engine = Engine(postgres, bus, clock=clock, group=f"engine-{prefix}")
    out = None
    try:
        await engine.start(loop=False)
        for sid in ("A", "B"):
            zone = {"station_id": sid, "zone_id": "Z1", "max_station_kw": 22.0,
                    "contract_max_kw": 22.0, "phases": 1}  # fmt: skip
            await bus.publish(prefix + "config.station_zones", sid, json.dumps(zone).encode())
            sample = {"station_id": sid, "connector_id": 1, "session_id": "s",
                      "power_kw": 10.0 if sid == "A" else 6.0, "event_ts": ts(-5),
                      "received_ts": ts(-5), "ocpp_version": "1.6"}  # fmt: skip
            await bus.publish(prefix + "ocpp.meter_values", sid, json.dumps(sample).encode())
        signal = {"signal_id": "sig", "zone_id": "Z1", "signal_type": "SHED",
                  "zone_limit_kw": 8.0, "start_ts": ts(0), "end_ts": ts(600),
                  "received_ts": ts(0)}  # fmt: skip
        await bus.publish(prefix + "grid.demand_response", "sig", json.dumps(signal).encode())
        sent: dict[str, float] = {}
        for _ in range(300):  # the group join takes a moment: tick until the commands go out
            for emit in await engine.run_tick():
                if not emit.topic.endswith("set_charging_profile"):
                    continue  # the pipeline's own topics (baselines, signal states)
                sent[emit.key] = json.loads(emit.value or "null")["target_power_kw"]
            if len(sent) == 2:
                break
            await asyncio.sleep(0.05)
        # What the broker holds: read the command topic from the beginning (subscribing
        # once the topic exists; a subscription without a group sees only existing topics).
        out = bus.subscribe([prefix + "ocpp.commands.set_charging_profile"], group=None)
        got: dict[str, float] = {}
        for _ in range(300):
            for r in await out.batch(max_records=100, timeout=0.1):
                if r.value is not None:
                    got[r.key or ""] = json.loads(r.value)["target_power_kw"]
            if len(got) == 2:
                break
        assert sent == {"A": 4.6, "B": 3.3}
        # SHED cap 8 kW: the 1.4 kW minimum each, the 5.2 kW left by demand 10 : 6.
        assert got == {"A": 4.6, "B": 3.3}
    finally:
        if out is not None:
            await out.close()
        await engine.stop()
        await bus.stop()
