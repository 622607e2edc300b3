"""Drill: ``kill -9`` of gridctl in the middle of 1,000 chargers' MeterValues.

``gridctl run`` in a child process on a LocalBus with its fsynced write-ahead log (the
data dir) and a real PostgreSQL; 1,000 chargers (:mod:`tests.drills.raw`) each send one
MeterValues a second and keep unacknowledged readings queued. Once traffic flows the
process gets SIGKILL (no shutdown code runs), is started again on the same data dir and
ports, and the chargers reconnect and retry. Afterwards the WAL is read: every reading a
charger got a CallResult for must be there (0 lost). Readings published but whose
CallResult died with the process are sent again and land twice: counted and printed, as
at-least-once delivery allows (the engine keys meter rows by station and timestamp).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench._common import GridctlProcess
from tests.drills.conftest import wal_meter_readings
from tests.drills.raw import Ledger, MeterCharger, finish, run_fleet, wait_for

CHARGERS = 1000

pytestmark = [pytest.mark.drill, pytest.mark.timeout(240)]


async def test_kill9_mid_meter_values_loses_no_acknowledged_reading(
    gridctl: Callable[..., GridctlProcess], postgres: str
) -> None:
    gw = gridctl(database_url=postgres, allow_unknown_stations=True, tick=1.0)
    await gw.start()
    ledger = Ledger()
    stop = asyncio.Event()
    chargers = [
        MeterCharger(gw.ocpp_port, f"kill-{i:04d}", ledger, stop, interval=1.0)
        for i in range(CHARGERS)
    ]
    tasks = await run_fleet(chargers)
    try:
        # Steady traffic from (nearly) every charger before the kill.
        assert await wait_for(lambda: len(ledger.acked) >= 3 * CHARGERS, timeout=90)
        acked_before = len(ledger.acked)
        sent_before = ledger.sent
        in_flight = sum(c.in_flight for c in chargers)
        gw.kill9()
        killed = time.monotonic()
        await asyncio.sleep(1.0)
        await gw.start()
        restarted = time.monotonic() - killed
        # Every charger back and acknowledged again, its queue drained.
        target = len(ledger.acked) + 3 * CHARGERS
        assert await wait_for(lambda: len(ledger.acked) >= target, timeout=90)
        backlog = await wait_for(lambda: all(len(c.queue) <= 1 for c in chargers), timeout=30)
    finally:
        stop.set()
        await finish(tasks)
    await gw.stop()  # graceful: the WAL is complete and closed

    on_bus = wal_meter_readings(gw.data_dir / "bus", "kill-")
    lost = ledger.acked - set(on_bus)
    duplicated = {r: n for r, n in on_bus.items() if n > 1}
    unacked_on_bus = set(on_bus) - ledger.acked
    print(
        f"\n[gateway kill -9] {CHARGERS} chargers; killed after {acked_before} acked readings "
        f"({sent_before} frames sent, {in_flight} in flight), back up {restarted:.1f} s after "
        "the kill"
        f"\n  sent: {ledger.summary()}"
        f"\n  arrived on the bus: {len(on_bus)} distinct readings, {sum(on_bus.values())} records"
        f"\n  lost (acked, not on the bus): {len(lost)}"
        f"\n  duplicated on the bus: {len(duplicated)} readings "
        f"({sum(duplicated.values()) - len(duplicated)} extra records)"
        f"\n  on the bus but never acked (ack died with the process): {len(unacked_on_bus)}"
        f"\n  chargers with their queue drained: {backlog}"
    )
    assert not lost, f"{len(lost)} acknowledged readings missing, e.g. {sorted(lost)[:3]}"
    assert ledger.disconnects + ledger.timeouts > 0, "the kill must have cut connections"


def test_wal_reader_counts_duplicates(tmp_path: Path) -> None:
    """The checker itself: a reading written twice counts twice; torn tails are ignored."""
    import base64
    import json
    from datetime import UTC, datetime

    from pipeline.contracts import MeterValue, encode

    ts = datetime(2026, 1, 1, tzinfo=UTC)
    mv = MeterValue(
        station_id="kill-0001", connector_id=1, event_ts=ts, received_ts=ts, ocpp_version="1.6"
    )
    line = json.dumps(
        {"t": "ocpp.meter_values", "k": "kill-0001", "v": base64.b64encode(encode(mv)).decode()}
    )
    (tmp_path / "bus.log").write_text(f"{line}\n{line}\n{line[:20]}")
    assert wal_meter_readings(tmp_path, "kill-") == {("kill-0001", ts): 2}
