"""Drill: one invalid reading in the middle of a fleet's traffic loses no acknowledged one.

``gridctl run`` in a child process (LocalBus with its WAL, a real PostgreSQL), 50 chargers
(:mod:`tests.drills.raw`) sending MeterValues every second. Mid-traffic one charger sends
readings the engine cannot store: ``connectorId`` 2**40 (outside the column's int32) and
-1, which the gateway's contract now refuses up front, and one it acknowledges but the
database refuses (a CHECK on ``meter_values`` stands for any value a column cannot hold).
What the issue saw: the engine's batch insert failed and the whole batch, thousands of
acknowledged readings, was skipped. Must hold: every acknowledged reading is in the
engine's ``meter_values`` or, with its reason, on ``ingest.rejected`` (read from the WAL).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bench._common import GridctlProcess
from pipeline import topics
from pipeline.contracts import RejectedRecord, decode
from tests.drills.raw import Ledger, MeterCharger, finish, payload, run_fleet, wait_for

CHARGERS = 50

pytestmark = [pytest.mark.drill, pytest.mark.timeout(240)]


def dead_letters(bus_dir: Any) -> list[RejectedRecord]:
    out = []
    with open(bus_dir / "bus.log", "rb") as f:
        for line in f:
            entry = json.loads(line)
            if entry["t"] == topics.INGEST_REJECTED and entry["v"] is not None:
                out.append(decode(RejectedRecord, base64.b64decode(entry["v"])))
    return out


async def test_one_invalid_reading_loses_no_acknowledged_reading(
    gridctl: Callable[..., GridctlProcess], postgres: str
) -> None:
    gw = gridctl(database_url=postgres, allow_unknown_stations=True, tick=1.0)
    await gw.start()
    async with await psycopg.AsyncConnection.connect(postgres, autocommit=True) as conn:
        await conn.execute(
            "ALTER TABLE meter_values ADD CONSTRAINT drill_no_connector_7 CHECK (connector_id <> 7)"
        )
    ledger = Ledger()
    stop = asyncio.Event()
    chargers = [
        MeterCharger(gw.ocpp_port, f"poison-{i:03d}", ledger, stop, interval=1.0)
        for i in range(CHARGERS)
    ]
    tasks = await run_fleet(chargers)
    poison_acked: set[tuple[str, datetime]] = set()
    answers: dict[int, Any] = {}
    try:
        assert await wait_for(lambda: len(ledger.acked) >= 3 * CHARGERS, timeout=60)
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(milliseconds=500)
        for n, connector in enumerate((2**40, -1, 7)):
            ts = base + timedelta(milliseconds=n)
            body = payload(ts)
            body["connectorId"] = connector
            answer = await chargers[0].call("MeterValues", body)
            answers[connector] = answer[0] if answer[0] == 3 else answer[2]
            if answer[0] == 3:
                poison_acked.add((chargers[0].id, ts))
        target = len(ledger.acked) + 3 * CHARGERS
        assert await wait_for(lambda: len(ledger.acked) >= target, timeout=60)
    finally:
        stop.set()
        await finish(tasks)

    async def stored() -> set[tuple[str, datetime]]:
        async with await psycopg.AsyncConnection.connect(postgres) as conn:
            cur = await conn.execute(
                "SELECT station_id, event_ts FROM meter_values WHERE station_id LIKE 'poison-%'"
            )
            return {(r[0], r[1]) for r in await cur.fetchall()}

    in_engine: set[tuple[str, datetime]] = set()
    for _ in range(100):  # until the engine has ingested what the bus holds
        in_engine = await stored()
        if ledger.acked <= in_engine:
            break
        await asyncio.sleep(0.3)
    await gw.stop()
    rejected = dead_letters(gw.data_dir / "bus")
    rejected_readings = set()
    for letter in rejected:
        if letter.topic == topics.METER_VALUES and letter.value:
            mv = json.loads(letter.value)
            rejected_readings.add((mv["station_id"], datetime.fromisoformat(mv["event_ts"])))
    acked = ledger.acked | poison_acked
    lost = acked - in_engine - rejected_readings
    print(
        f"\n[poison record] {CHARGERS} chargers; {ledger.summary()}"
        f"\n  invalid readings answered: {answers}"
        f"\n  acknowledged: {len(acked)}, in the engine: {len(in_engine & acked)}, "
        f"dead letters: {len(rejected)} ({sorted({r.reason for r in rejected})})"
        f"\n  lost (acknowledged, in neither): {len(lost)}"
    )
    assert not lost, f"{len(lost)} acknowledged readings lost, e.g. {sorted(lost)[:3]}"
    assert ledger.acked <= in_engine  # every valid reading reached the engine
    assert poison_acked, "the gateway acknowledged none of the invalid readings"
    for reading in poison_acked:
        assert reading in rejected_readings  # an acknowledged invalid one is a dead letter
