"""The demo scenario: a fleet, a DR event on one zone, and the figures that matter.

Everything runs for real in one process: an embedded PostgreSQL engine, the OCPP gateway
on a loopback port, the API, and a fleet of OCPP chargers (the ocpp library) that connect
over websockets and obey the profiles they get. The scenario sends one CURTAIL signal
through the HTTP API, exactly as an operator's ``gridctl dr send`` would, and measures:

- DR signal (API 201) → the last charger of the zone receiving its SetChargingProfile;
- DR signal → the zone's reported load (the engine's ``zone_load`` view) under its cap;
- commands accepted / total, from ``ocpp.command_results``;
- alerts raised, from the alert topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from cli.runtime import Endpoints, RunSettings, Runtime
from pipeline import topics
from pipeline.bus import Bus, Subscription
from pipeline.contracts import CommandResult, decode
from pipeline.embedded_pg import free_port
from pipeline.secrets import hash_password
from simulator.charger import ChargerSettings
from simulator.fleet import Fleet, FleetConfig
from simulator.observe import ProfileEvent
from simulator.stations import api_rows


@dataclass
class DemoConfig:
    chargers: int = 60
    zones: int = 3
    duration: float = 120.0
    reduce_pct: float = 40.0
    meter_interval: float = 2.0
    seed: int = 7
    #: seconds the fleet reports before the DR event (see baseline_wait)
    baseline_least: float = 5.0


@dataclass
class ZoneRow:
    zone_id: str
    load_kw: float
    capacity_kw: float
    cap_kw: float | None
    signal_id: str | None


@dataclass
class DemoState:
    """What the live view shows and the summary reports; updated by the scenario."""

    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    zones: list[ZoneRow] = field(default_factory=list)
    history: dict[str, deque[tuple[float, float, float | None]]] = field(default_factory=dict)
    event_zone: str | None = None
    signal_id: str | None = None
    signal_at: float | None = None  # POSIX time of the API's 201
    signal_end_at: float | None = None
    profiles_received: dict[str, float] = field(default_factory=dict)
    clears_received: dict[str, float] = field(default_factory=dict)
    under_cap_after: float | None = None
    command_status: Counter[str] = field(default_factory=Counter)
    alerts: list[str] = field(default_factory=list)
    zone_stations: set[str] = field(default_factory=set)
    connected: int = 0
    chargers: int = 0
    limited: int = 0
    log: deque[str] = field(default_factory=lambda: deque(maxlen=8))

    def note(self, line: str) -> None:
        stamp = f"{time.monotonic() - self.started:6.1f}s"
        self.log.append(f"{stamp}  {line}")

    @property
    def last_profile_latency(self) -> float | None:
        if self.signal_at is None or not self.profiles_received:
            return None
        return max(self.profiles_received.values()) - self.signal_at


def baseline_wait(meter_interval: float, *, least: float = 5.0) -> float:
    """Seconds the fleet reports before the signal is sent.

    The control law freezes a signal's baseline at its first evaluation from the latest
    fresh sample of every connector (docs/control-law.md), so the event needs no closed
    minute: it needs every charger to have reported once, which two meter intervals plus
    the first connections cover, and a few seconds of load on the dashboard to cut from.
    """
    return max(least, 2 * meter_interval + 1.0)


class Demo:
    """Run the scenario; ``state`` is safe to read from the view at any time."""

    def __init__(self, config: DemoConfig, on_line: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.state = DemoState()
        self._on_line = on_line

    def _say(self, line: str) -> None:
        self.state.note(line)
        if self._on_line is not None:
            self._on_line(line)

    async def run(self) -> DemoState:
        tmp = tempfile.TemporaryDirectory(prefix="gridctl-demo-")
        settings = RunSettings(
            data_dir=Path(tmp.name),
            ocpp_port=free_port(),
            api_port=free_port(),
            pg_port=free_port(),
            tick=1.0,
        )
        runtime = Runtime(settings)
        fleet: Fleet | None = None
        watchers: list[asyncio.Task[None]] = []
        try:
            self.state.phase = "starting the engine, gateway and API"
            endpoints = await runtime.start()
            self._say(f"gridctl running: OCPP {endpoints.ocpp_url}, API {endpoints.api_url}")
            self._say(
                f"while it runs: psql {endpoints.database_url} ; API token in "
                f"{endpoints.token_file} (this demo's data dir is deleted at the end)"
            )
            assert runtime.bus is not None
            watchers.append(asyncio.create_task(self._watch_bus(runtime.bus)))
            fleet = await self._start_fleet(endpoints)
            watchers.append(asyncio.create_task(self._watch_zones(endpoints, fleet)))
            await self._scenario(endpoints, fleet)
        finally:
            for task in watchers:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            if fleet is not None:
                await fleet.stop()
            await runtime.stop(discard_database=True)
            tmp.cleanup()
        self.state.phase = "done"
        return self.state

    # -- set-up --------------------------------------------------------------------------
    async def _start_fleet(self, endpoints: Endpoints) -> Fleet:
        cfg = self.config
        password = "demo-password"
        fleet = Fleet(
            FleetConfig(
                url=endpoints.ocpp_url.rsplit("/", 1)[0],
                chargers=cfg.chargers,
                zones=cfg.zones,
                seed=cfg.seed,
                password=password,
                settings=ChargerSettings(meter_interval=cfg.meter_interval, seed=cfg.seed),
            )
        )
        stored = hash_password(password)  # one hash: every simulated station shares it
        stations = api_rows(fleet.specs, stored)
        async with self._api(endpoints) as api:
            response = await api.post("/v1/stations", json=stations)
            response.raise_for_status()
        self._say(f"imported {len(stations)} stations in {cfg.zones} zones")
        self.state.chargers = len(stations)
        fleet.observations.listeners.append(self._on_profile)
        self.state.phase = "chargers connecting"
        await fleet.start()
        await fleet.wait_connected(timeout=60)
        self._say(f"{len(fleet.connected)} chargers connected and booted")
        return fleet

    def _api(self, endpoints: Endpoints) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {endpoints.token}"} if endpoints.token else {}
        return httpx.AsyncClient(base_url=endpoints.api_url, headers=headers, timeout=10)

    # -- the scenario -------------------------------------------------------------------------
    async def _scenario(self, endpoints: Endpoints, fleet: Fleet) -> None:
        cfg = self.config
        began = time.monotonic()
        warmup = baseline_wait(cfg.meter_interval, least=cfg.baseline_least)
        self.state.phase = f"measuring the baseline ({warmup:.0f} s)"
        self._say(
            f"{cfg.chargers} chargers connecting and charging; measuring the baseline load "
            f"for {warmup:.0f} s before the DR event"
        )
        await asyncio.sleep(warmup)
        warmup = time.monotonic() - began
        zone = fleet.specs[0].zone_id
        self.state.event_zone = zone
        self.state.zone_stations = {s.station_id for s in fleet.specs if s.zone_id == zone}
        event_length = max(20.0, cfg.duration - warmup - 15.0)
        start = datetime.now(UTC)
        body = {
            "zone_id": zone,
            "signal_type": "CURTAIL",
            "target_reduction_pct": cfg.reduce_pct,
            "start_ts": start.isoformat(),
            "end_ts": (start + timedelta(seconds=event_length)).isoformat(),
            "priority": 2,
        }
        async with self._api(endpoints) as api:
            response = await api.post("/v1/signals", json=body)
            self.state.signal_at = time.time()
            response.raise_for_status()
        self.state.signal_id = response.json()["signal_id"]
        self.state.signal_end_at = self.state.signal_at + event_length
        self._say(
            f"DR signal {self.state.signal_id}: CURTAIL {cfg.reduce_pct:.0f} % on {zone} "
            f"for {event_length:.0f} s"
        )
        self.state.phase = f"DR event on {zone}"
        await asyncio.sleep(event_length)
        self.state.phase = f"DR event ended on {zone}: limits cleared"
        self._say("signal ended; the engine emits tombstones and the gateway clears profiles")
        await asyncio.sleep(max(5.0, cfg.duration - warmup - event_length))

    def _on_profile(self, event: ProfileEvent) -> None:
        st = self.state
        if st.signal_at is None or event.station_id not in st.zone_stations:
            return
        if event.action == "SetChargingProfile":
            st.profiles_received.setdefault(event.station_id, event.at)
        elif event.action == "ClearChargingProfile":
            st.clears_received.setdefault(event.station_id, event.at)

    # -- watchers ---------------------------------------------------------------------------
    async def _watch_bus(self, bus: Bus) -> None:
        sub: Subscription = bus.subscribe(
            [topics.COMMAND_RESULTS, topics.ALERTS_OVERLOAD, topics.ALERTS_DR],
            from_beginning=False,
        )
        try:
            while True:
                for record in await sub.batch(timeout=0.5):
                    if record.value is None:
                        continue
                    if record.topic == topics.COMMAND_RESULTS:
                        result = decode(CommandResult, record.value)
                        self.state.command_status[result.status] += 1
                    else:
                        line = f"{record.topic}: {record.value.decode()[:160]}"
                        self.state.alerts.append(line)
                        self._say(line)
        finally:
            await sub.close()

    async def _watch_zones(self, endpoints: Endpoints, fleet: Fleet) -> None:
        assert endpoints.database_url is not None
        async with await psycopg.AsyncConnection.connect(
            endpoints.database_url, autocommit=True
        ) as conn:
            while True:
                await self._poll_zones(conn)
                snap = fleet.snapshot()
                self.state.connected = snap.connected
                self.state.limited = snap.limited
                await asyncio.sleep(1.0)

    async def _poll_zones(self, conn: psycopg.AsyncConnection) -> None:
        cur = await conn.execute(
            "SELECT l.zone_id, l.load_kw, l.capacity_kw, c.cap_kw, c.signal_id "
            "FROM zone_load AS l LEFT JOIN dr_zone_caps AS c ON c.zone_id = l.zone_id "
            "ORDER BY l.zone_id"
        )
        rows = [ZoneRow(*row) for row in await cur.fetchall()]
        self.state.zones = rows
        now = time.monotonic() - self.state.started
        for row in rows:
            series = self.state.history.setdefault(row.zone_id, deque(maxlen=120))
            series.append((now, float(row.load_kw), row.cap_kw))
            st = self.state
            if (
                row.zone_id == st.event_zone
                and st.signal_at is not None
                and st.under_cap_after is None
                and row.cap_kw is not None
                and row.load_kw <= row.cap_kw
            ):
                st.under_cap_after = time.time() - st.signal_at
                self._say(
                    f"{row.zone_id} under its cap: {row.load_kw:.1f} kW <= {row.cap_kw:.1f} kW "
                    f"after {st.under_cap_after:.1f} s"
                )
