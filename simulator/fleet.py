"""A fleet of simulated chargers in one process, and what it exposes to callers.

Use it from Python (the demo's live view, the benchmarks)::

    fleet = Fleet(FleetConfig(url="ws://127.0.0.1:9000/ocpp", chargers=100, zones=10))
    await fleet.start()                 # returns at once; connects are staggered
    await fleet.wait_connected(timeout=60)
    snap = fleet.snapshot()             # load per zone, charging / paused counts
    fleet.charger("sim-0001")           # one charger's draw, offer, limit, last profile
    fleet.observations                  # acks p50/p99, CallErrors, profile events
    await fleet.stop()

Connects are staggered evenly over ``ramp_up`` seconds (default: 200 per second), so
a big fleet does not arrive as one storm of handshakes and BootNotifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator import stations as st
from simulator.charger import ChargerSettings, ChargerState
from simulator.errors import ConfigError
from simulator.link import LinkOptions, run_charger
from simulator.observe import Observations
from simulator.physics import StationSpec


@dataclass
class FleetConfig:
    """What to simulate; ``stations`` overrides the generated ones (e.g. from a CSV)."""

    url: str
    chargers: int = 10
    zones: int = 1
    ratio_201: float = 0.5
    seed: int = 0
    reject_max_profile_fraction: float = 0.0
    password: str | None = None
    ramp_up: float | None = None
    settings: ChargerSettings = field(default_factory=ChargerSettings)
    stations: list[StationSpec] | None = None
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    ping_interval: float | None = None
    ca_file: str | None = None  # for wss:// with a private or self-signed certificate

    def build_stations(self) -> list[StationSpec]:
        if self.stations is not None:
            return self.stations[: self.chargers] if self.chargers else self.stations
        return st.generate(
            self.chargers,
            zones=self.zones,
            seed=self.seed,
            ratio_201=self.ratio_201,
            reject_max_profile_fraction=self.reject_max_profile_fraction,
            password=self.password,
        )


@dataclass(frozen=True, slots=True)
class ChargerView:
    """One charger as the live view shows it."""

    station_id: str
    zone_id: str
    ocpp_version: str
    connected: bool
    charging: bool
    paused: bool
    power_kw: float
    offered_kw: float
    limit_kw: float | None  # composite profile limit now; None = no profile limits
    energy_kwh: float
    soc_percent: float | None
    profile_at: float | None


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """Totals for one summary line."""

    chargers: int
    connected: int
    sessions: int
    charging: int
    paused: int
    limited: int
    total_kw: float
    zone_kw: dict[str, float]


class Fleet:
    """Run many chargers; see the module docstring."""

    def __init__(self, config: FleetConfig, *, clock: Callable[[], float] = time.time) -> None:
        if config.chargers < 0:
            raise ConfigError("chargers must be >= 0")
        self.config = config
        self.clock = clock
        self.specs = config.build_stations()
        if not self.specs:
            raise ConfigError("no stations to simulate")
        settings = config.settings
        if settings.seed != config.seed:
            settings = dataclasses.replace(settings, seed=config.seed)
        self.settings = settings
        now = clock()
        self.states: dict[str, ChargerState] = {
            spec.station_id: ChargerState(spec, i, now, settings.mix, config.seed)
            for i, spec in enumerate(self.specs)
        }
        self.observations = Observations()
        self.connected: set[str] = set()
        self._options = LinkOptions(
            config.url,
            backoff_min=config.backoff_min,
            backoff_max=config.backoff_max,
            ping_interval=config.ping_interval,
            ca_file=config.ca_file,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ramp: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Launch the chargers, staggered over the ramp-up; returns immediately."""
        self._stop.clear()
        self._ramp = asyncio.create_task(self._launch(), name="fleet-ramp")

    async def _launch(self) -> None:
        n = len(self.specs)
        ramp = self.config.ramp_up if self.config.ramp_up is not None else n / 200.0
        gap = ramp / n if n else 0.0
        t0 = time.monotonic()
        for i, state in enumerate(self.states.values()):
            if self._stop.is_set():
                return
            self._tasks.append(
                asyncio.create_task(
                    run_charger(
                        state,
                        self._options,
                        self.settings,
                        self.observations,
                        self._stop,
                        self.connected,
                        self.clock,
                    ),
                    name=f"charger-{state.spec.station_id}",
                )
            )
            delay = t0 + (i + 1) * gap - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif i % 50 == 49:
                await asyncio.sleep(0)  # let the handshakes already started progress

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop every charger (closes the websockets); in-flight calls are cancelled."""
        self._stop.set()
        if self._ramp is not None:
            with contextlib.suppress(BaseException):
                await self._ramp
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task
        self._tasks.clear()

    async def wait_connected(self, count: int | None = None, timeout: float = 60.0) -> bool:
        """Wait until ``count`` (default: all) chargers are booted; False on timeout."""
        want = len(self.specs) if count is None else count
        deadline = time.monotonic() + timeout
        while len(self.connected) < want:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def run(self, duration: float | None) -> None:
        """Start, run for ``duration`` seconds (forever if ``None``), stop."""
        await self.start()
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            await self.stop()

    # -- views -------------------------------------------------------------------------
    def charger(self, station_id: str) -> ChargerView:
        state = self.states[station_id]
        spec, m, s = state.spec, state.meter, state.session
        now = self.clock()
        amps = state.limit_amps(now)
        limit_kw = None if amps is None else amps * spec.voltage_v * m.phases / 1000.0
        return ChargerView(
            station_id=station_id,
            zone_id=spec.zone_id,
            ocpp_version=spec.ocpp_version,
            connected=station_id in self.connected,
            charging=m.watts > 0,
            paused=s is not None and s.started and m.paused,
            power_kw=m.watts / 1000.0,
            offered_kw=m.offered_w / 1000.0,
            limit_kw=limit_kw,
            energy_kwh=m.energy_wh / 1000.0,
            soc_percent=s.soc if s is not None and s.started else None,
            profile_at=state.profile_at,
        )

    def snapshot(self) -> FleetSnapshot:
        """Totals from each charger's last decided draw (cheap: no physics re-run)."""
        zone_kw: dict[str, float] = defaultdict(float)
        sessions = charging = paused = limited = 0
        total = 0.0
        for state in self.states.values():
            m, s = state.meter, state.session
            kw = m.watts / 1000.0
            zone_kw[state.spec.zone_id] += kw
            total += kw
            if s is not None and s.started:
                sessions += 1
                if m.paused:
                    paused += 1
            if kw > 0:
                charging += 1
            if state.store.profiles:
                limited += 1
        return FleetSnapshot(
            chargers=len(self.states),
            connected=len(self.connected),
            sessions=sessions,
            charging=charging,
            paused=paused,
            limited=limited,
            total_kw=round(total, 3),
            zone_kw={z: round(v, 3) for z, v in sorted(zone_kw.items())},
        )
