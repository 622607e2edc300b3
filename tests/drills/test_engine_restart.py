"""Drill: the engine killed (SIGKILL) during a DR event and restarted.

The gateway and the API run as ``gridctl run --engine risingwave`` (no embedded engine),
the engine as its own process (:mod:`tests.drills.engine_proc`), both on KafkaBus
(a Tansu broker of this test) and a real PostgreSQL. 20 chargers in 2 zones report
7 kW each; a CURTAIL with an absolute zone limit goes to both zones, ending in
``FIRST_S`` seconds. Once every charger holds its limit the engine is killed; while it
is down the operator extends both signals (same signal id, new end), the chargers'
limits reach their ``validTo`` and lapse. Then the engine starts again.

Must hold: every charger gets the extended limit again (re-applied, because the event is
still active), and on ``ocpp.commands.set_charging_profile`` each station has exactly
one command per signal revision: none repeated across the restart, none missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench._common import ROOT, GridctlProcess
from pipeline import topics
from pipeline.bus import KafkaBus
from pipeline.contracts import SetChargingProfileCommand, decode
from tests.drills.raw import Ledger, MeterCharger, finish, run_fleet, stations, wait_for

CHARGERS = 20
ZONES = ("eng-zone-a", "eng-zone-b")
PASSWORD = "engine-drill"
FIRST_S = 25.0  # the signals' first end: the limits lapse on the chargers after this
EXTENDED_S = 180.0

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]


@contextlib.asynccontextmanager
async def engine_process(dsn: str, bootstrap: str, log: Path) -> AsyncIterator[Any]:
    with open(log, "ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.drills.engine_proc", dsn, bootstrap, "1.0",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line.strip() == b"ready", f"engine did not start: {log.read_text()[-2000:]}"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def valid_to(profile: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(profile["csChargingProfiles"]["validTo"])


async def commands_on_bus(bootstrap: str, config: dict[str, Any]) -> dict[str, list[Any]]:
    """Every record of the command topic, per station, in order (Tansu never compacts)."""
    out: dict[str, list[Any]] = defaultdict(list)
    async with KafkaBus(bootstrap, config=config) as bus:
        sub = bus.subscribe([topics.SET_CHARGING_PROFILE], group=None, from_beginning=True)
        try:
            idle_until = time.monotonic() + 5.0
            while time.monotonic() < idle_until:
                batch = await sub.batch(1000, timeout=0.5)
                if batch:
                    idle_until = time.monotonic() + 2.0
                for r in batch:
                    if r.key and r.key.startswith("eng-"):
                        value = (
                            None if r.value is None else decode(SetChargingProfileCommand, r.value)
                        )
                        out[r.key].append(value)
        finally:
            await sub.close()
    return out


async def test_engine_restart_during_dr_repeats_nothing_and_reapplies_lapsed_limits(
    gridctl: Callable[..., GridctlProcess], postgres: str, own_tansu: Any, tmp_path: Path
) -> None:
    bootstrap, config = own_tansu.bootstrap, dict(own_tansu.client_config)
    log = tmp_path / "engine.log"
    gw = gridctl(
        engine="risingwave", database_url=postgres, bus="kafka", kafka_bootstrap=bootstrap,
        kafka_config=config,
    )  # fmt: skip
    ledger = Ledger()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    async with engine_process(postgres, bootstrap, log) as first_engine:
        await gw.start()
        specs = stations(CHARGERS, lambda i: f"eng-{i:03d}", lambda i: ZONES[i % 2])
        await gw.import_stations(specs, PASSWORD)
        chargers = [
            MeterCharger(
                gw.ocpp_port,
                s.station_id,
                ledger,
                stop,
                interval=1.0,
                password=PASSWORD,
                boot=True,
                watts=7000.0,
            )
            for s in specs
        ]
        tasks = await run_fleet(chargers)
        async with await psycopg.AsyncConnection.connect(postgres, autocommit=True) as conn:

            async def reporting() -> int:
                cur = await conn.execute(
                    "SELECT COALESCE(SUM(reporting_stations), 0) FROM zone_load "
                    "WHERE zone_id LIKE 'eng-zone-%'"
                )
                return int((await cur.fetchone())[0])  # type: ignore[index]

            deadline = time.monotonic() + 60
            while await reporting() < CHARGERS and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert await reporting() == CHARGERS

        start = datetime.now(UTC)
        first_end = start + timedelta(seconds=FIRST_S)

        async def send(end: datetime) -> None:
            async with gw.api() as api:
                for zone in ZONES:
                    response = await api.post(
                        "/v1/signals",
                        json={
                            "signal_id": f"sig-{zone}",
                            "zone_id": zone,
                            "signal_type": "CURTAIL",
                            "zone_limit_kw": 50.0,
                            "start_ts": start.isoformat(),
                            "end_ts": end.isoformat(),
                        },
                    )
                    assert response.status_code == 201, response.text

        sent_at = time.time()
        await send(first_end)
        assert await wait_for(lambda: all(c.profiles(sent_at) for c in chargers), timeout=30)
        first_engine.kill()
        await first_engine.wait()
        killed_at = time.time()
    # The engine is down; the API and the gateway are up.
    extended_end = start + timedelta(seconds=EXTENDED_S)
    await send(extended_end)
    lapse_wait = first_end.timestamp() + 1.0 - time.time()
    await asyncio.sleep(max(0.0, lapse_wait))
    lapsed = all(valid_to(c.profiles(sent_at)[-1].payload) <= datetime.now(UTC) for c in chargers)
    restarted_at = time.time()
    async with engine_process(postgres, bootstrap, log):
        reapplied = await wait_for(
            lambda: all(
                any(valid_to(p.payload) == extended_end for p in c.profiles(restarted_at))
                for c in chargers
            ),
            timeout=60,
        )
        reapplied_s = time.time() - restarted_at
        await asyncio.sleep(3.0)  # a few more ticks: anything repeated would show now
        stop.set()
        await finish(tasks)
    on_bus = await commands_on_bus(bootstrap, config)
    repeated = {k: v for k, v in on_bus.items() if any(a == b for a, b in pairwise(v))}
    ends = {k: [None if c is None else c.dr_end_ts for c in v] for k, v in on_bus.items()}
    revisions = [first_end, extended_end]
    missing = [
        s.station_id for s in specs if [e for e in ends.get(s.station_id, []) if e] != revisions
    ]
    # A tombstone between the two revisions: the engine cleared a limit of an event that was
    # still active (its stored end had passed, the extension not yet ingested).
    spurious = {k: e for k, e in ends.items() if None in e[:-1]}
    received = {c.id: len(c.profiles(sent_at)) for c in chargers}
    print(
        f"\n[engine restart] {CHARGERS} chargers in {len(ZONES)} zones; engine killed "
        f"{killed_at - sent_at:.1f} s after the signals; signals extended while it was down; "
        f"limits lapsed on every charger before the restart: {lapsed}"
        f"\n  sent: 2 signals x 2 revisions through the API"
        f"\n  arrived: commands on the bus per station {sorted({len(v) for v in on_bus.values()})}"
        f" (stations {len(on_bus)}/{CHARGERS}); SetChargingProfile received per charger "
        f"{sorted(set(received.values()))}; extended limit re-applied on all: {reapplied} "
        f"({reapplied_s:.1f} s after the engine restarted)"
        f"\n  duplicated: stations with a command repeated {len(repeated)}; stations missing a "
        f"revision {len(missing)}; stations with a spurious tombstone (clear) between the "
        f"revisions {len(spurious)}"
        f"\n  chargers: {ledger.summary()}"
    )
    assert lapsed, "the first limits must have lapsed while the engine was down"
    assert reapplied, "lapsed limits of a still-active event must be re-applied"
    assert not repeated, f"commands repeated: {dict(list(repeated.items())[:2])}"
    assert not missing, f"stations without both revisions: {missing[:5]}"
    assert set(received.values()) == {2}, f"profiles per charger: {received}"
    if spurious:
        pytest.xfail(
            "known defect: after a restart on KafkaBus the engine evaluates its sinks before "
            "its consumer group has joined and read the backlog, so a signal whose stored end "
            "passed while it was down is cleared, then set again once the extension is read"
        )
