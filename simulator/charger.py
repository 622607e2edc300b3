"""The version-neutral part of a simulated charger: its state and its driving loop.

A charger is split in two so that a reconnect loses nothing:

- :class:`ChargerState` lives for the whole run (station spec, installed profiles,
  energy register, the car plugged in). It is small and slotted.
- a ChargePoint object (:mod:`simulator.charger16`, :mod:`simulator.charger201`) lives
  for one websocket connection. It mixes in :class:`Driver`, which runs the loop below,
  and supplies the version's messages through six methods (``boot``, ``heartbeat``,
  ``report_state``, ``begin_tx``, ``send_meter``, ``end_tx``).

The loop sleeps until the next thing due (a meter sample, a heartbeat, a car arriving or
leaving, a profile lapsing at ``validTo``) or until a CSMS command wakes it, then brings
the physics up to date and reports. With ``report_on_change`` a new limit is reported at
once (2.0.1 trigger ``ChargingRateChanged``), so the CSMS sees the effect without waiting
for the next periodic sample.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType, validate_payload

from simulator import physics
from simulator import profiles as prof
from simulator.observe import Observations, ProfileEvent

#: CALL unique ids: a process-wide counter is unique per connection and cheaper than uuid4.
_IDS = itertools.count(1)


@dataclass(slots=True, frozen=True)
class ChargerSettings:
    """How every charger of a fleet behaves (shared, so it costs nothing per charger)."""

    meter_interval: float = 10.0
    heartbeat_interval: float = 300.0  # until BootNotification gives one
    report_on_change: bool = True
    response_timeout: float = 30.0
    ac: bool = True
    seed: int = 0
    mix: physics.SessionMix = field(default_factory=physics.SessionMix)
    #: validate our own calls and the CSMS's answers against the OCPP schemas (the ocpp
    #: library's jsonschema path, ~0.5-1 ms each); benchmarks turn it off so the load
    #: generator does not eat the CPU the gateway is being measured on
    validate: bool = True
    vendor: str = "gridctl"
    model: str = "sim"


class ChargerState:
    """Everything a charger keeps across connections."""

    __slots__ = (
        "index",
        "interval",
        "meter",
        "next_arrival",
        "profile_at",
        "seq_no",
        "session",
        "sessions",
        "spec",
        "store",
    )

    def __init__(
        self, spec: physics.StationSpec, index: int, now: float, mix: physics.SessionMix, seed: int
    ) -> None:
        self.spec = spec
        self.index = index
        self.store = prof.ProfileStore()
        self.meter = physics.Meter(now)
        self.session: physics.EvSession | None = None
        self.sessions = 0
        self.seq_no = 0  # 2.0.1 TransactionEvent seqNo, per transaction
        self.profile_at: float | None = None  # last Set/Clear received (POSIX s)
        self.interval: float | None = None  # sample interval the CSMS configured, if any
        self.next_arrival = mix.first_arrival(self.rng(seed, "arrival"), now)

    def rng(self, seed: int, what: str) -> random.Random:
        """A generator for one decision, derived from (seed, station, what, sessions).

        Seeding with a string hashes it with SHA-512, so runs with the same seed repeat
        exactly, and no charger carries a Mersenne state (2.5 kB) around.
        """
        return random.Random(f"{seed}:{self.spec.station_id}:{what}:{self.sessions}")

    def limit_amps(self, t: float) -> float | None:
        return physics.limit_for(self.spec, self.store, self._charging_session(), t)

    def _charging_session(self) -> physics.EvSession | None:
        s = self.session
        return s if s is not None and s.started else None

    def refresh(self, t: float, ac: bool = True) -> bool:
        """Bring the meter up to ``t`` and re-decide the draw; True if the CSMS should know."""
        session = self._charging_session()
        self.meter.advance(t, session)
        self.store.prune(t)
        draw = physics.decide(self.spec, session, self.limit_amps(t), ac=ac)
        return self.meter.apply(draw)

    def next_change(self, t0: float, t1: float) -> float | None:
        """The first time in ``(t0, t1)`` a profile starts, steps or lapses."""
        tx_start = self.session.arrival if self.session else None
        points = [b for p in self.store.profiles for b in p.breakpoints(t0, t1, tx_start)]
        return min(points) if points else None


class Driver:
    """The charging loop, mixed into each version's ChargePoint.

    Subclasses set ``version`` and implement the six message methods; handlers of CSMS
    commands call :meth:`installed` / :meth:`cleared` so the loop wakes and reports.
    """

    version = "?"
    state: ChargerState
    settings: ChargerSettings
    obs: Observations
    clock: Callable[[], float]

    def setup(
        self,
        state: ChargerState,
        settings: ChargerSettings,
        obs: Observations,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state, self.settings, self.obs, self.clock = state, settings, obs, clock
        self._wake = asyncio.Event()
        self.heartbeat_every = settings.heartbeat_interval
        self.boot_retry = 10.0  # s before re-sending a BootNotification not Accepted
        self.reported: str | None = None
        self.reported_occupancy: str | None = None  # 2.0.1 StatusNotification
        self.triggered: set[str] = set()  # TriggerMessage requests not yet served

    # -- version-specific messages (implemented by charger16 / charger201) -----------------
    def boot_payload(self) -> dict[str, Any]:
        """The BootNotification request of this OCPP version."""
        raise NotImplementedError

    async def boot(self) -> float | None:
        """BootNotification; the heartbeat interval once accepted, ``None`` to retry later.

        On Pending or Rejected, set ``boot_retry`` from the answer's interval (the CSMS
        throttles a reconnect storm that way). Both versions answer with the same fields.
        """
        result = await self.send("BootNotification", self.boot_payload())
        if result is None or result.get("status") != "Accepted":
            if result is not None and result.get("interval"):
                self.boot_retry = float(result["interval"])
            return None
        return float(result.get("interval", 0))

    async def heartbeat(self) -> None:
        await self.send("Heartbeat", {})

    async def report_state(self, connector_state: str) -> None:
        """Tell the CSMS the connector state (1.6 ChargePointStatus vocabulary)."""
        raise NotImplementedError

    async def begin_tx(self) -> bool:
        """Authorize and open the transaction of ``state.session``; True when it may charge."""
        raise NotImplementedError

    async def send_meter(self, trigger: str) -> None:
        """Send one sample; ``trigger`` is ``periodic`` or ``change``."""
        raise NotImplementedError

    async def end_tx(self) -> None:
        raise NotImplementedError

    # -- shared pieces -------------------------------------------------------------------
    async def send(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send one CALL and return the CALLRESULT's payload (camelCase, as on the wire).

        ``None`` when the CSMS answered with a CallError (counted by code) or not at all
        (counted as a timeout). This replaces the ocpp library's ``call()`` for our own
        messages: that one turns each payload dataclass into a dict with
        ``dataclasses.asdict`` (a deep copy) and re-cases every key, which profiled as the
        largest CPU cost of a big fleet. Here payloads are built camelCase once; the
        library still frames, validates (when ``settings.validate``), routes the answer
        and enforces one outstanding call at a time.
        """
        cp: Any = self
        msg = Call(unique_id=f"{next(_IDS):x}", action=action, payload=payload)
        validate = self.settings.validate
        if validate:
            await validate_payload(msg, cp._ocpp_version)
        started = time.perf_counter()
        async with cp._call_lock:
            await cp._send(msg.to_json())
            try:
                response = await cp._get_specific_response(msg.unique_id, cp._response_timeout)
            except TimeoutError:
                self.obs.timeouts[action] += 1
                return None
        if response.message_type_id == MessageType.CallError:
            self.obs.call_errors[f"{action}:{response.error_code}"] += 1
            return None
        if validate:
            response.action = action
            try:
                await validate_payload(response, cp._ocpp_version)
            except OCPPError as exc:
                self.obs.call_errors[f"{action}:invalid answer {exc.code}"] += 1
                return None
        self.obs.ack(action, (time.perf_counter() - started) * 1000.0)
        return response.payload  # type: ignore[no-any-return]

    @property
    def meter_interval(self) -> float:
        """The CSMS's MeterValueSampleInterval / TxUpdatedInterval if set, else the fleet's."""
        return self.state.interval or self.settings.meter_interval

    def configure_interval(self, value: str) -> bool:
        """Take a sample interval from the CSMS (seconds, > 0); False if unusable."""
        try:
            seconds = float(value)
        except ValueError:
            return False
        if not 0 < seconds <= 86400:
            return False
        self.state.interval = seconds
        self._wake.set()
        return True

    def connector_state(self) -> str:
        s = self.state.session
        if s is None:
            return "Available"
        if not s.started:
            return "Preparing"
        if s.done:
            return "Finishing"
        if self.state.meter.paused:
            return "SuspendedEVSE"
        return "Charging"

    def installed(self, profile: prof.Profile, status: str, action: str) -> None:
        """Record a SetChargingProfile answer; wake the loop so the new limit applies now."""
        now = self.clock()
        self.state.profile_at = now
        self.obs.profile_event(
            ProfileEvent(
                self.state.spec.station_id,
                action,
                now,
                status,
                profile.purpose,
                profile.periods[0].limit,
                profile.unit,
                profile.valid_to,
            )
        )
        self._wake.set()

    def refused(self, status: str, action: str, purpose: str | None = None) -> None:
        now = self.clock()
        self.obs.profile_event(
            ProfileEvent(self.state.spec.station_id, action, now, status, purpose)
        )

    def cleared(self, status: str) -> None:
        now = self.clock()
        self.state.profile_at = now
        self.obs.profile_event(
            ProfileEvent(self.state.spec.station_id, "ClearChargingProfile", now, status)
        )
        self._wake.set()

    def composite_periods(self, duration: float, unit: str) -> tuple[float, list[dict[str, Any]]]:
        """The composite schedule from now for ``duration`` s: (start, periods)."""
        st = self.state
        t0 = self.clock()
        session = st.session if st.session is not None and st.session.started else None
        phases = min(st.spec.phases, session.ev_phases) if session else st.spec.phases
        points = sorted(
            {
                t0,
                *[
                    b
                    for p in st.store.profiles
                    for b in p.breakpoints(t0, t0 + duration, session.arrival if session else None)
                ],
            }
        )
        periods: list[dict[str, Any]] = []
        for t in points:
            amps = st.limit_amps(t)
            cap = st.spec.max_amps if amps is None else min(st.spec.max_amps, amps)
            value = cap if unit == "A" else cap * st.spec.voltage_v * phases
            value = round(value, 1)
            if not periods or periods[-1]["limit"] != value:
                periods.append(
                    {"start_period": int(t - t0), "limit": value, "number_phases": phases}
                )
        return t0, periods

    # -- the loop ------------------------------------------------------------------------
    async def drive(self, stop: asyncio.Event) -> None:
        """Run sessions and reporting on this connection until ``stop`` or a disconnect."""
        st, cfg = self.state, self.settings
        now = self.clock()
        st.refresh(now, cfg.ac)
        await self._report_if_changed()
        next_meter = now
        next_beat = now + self.heartbeat_every
        retry_at = 0.0
        while not stop.is_set():
            # Cleared before this round's awaits: a command that arrives while we are
            # sending sets it again, and the wait below then returns at once.
            self._wake.clear()
            now = self.clock()
            changed = st.refresh(now, cfg.ac)
            s = st.session
            if s is None and now >= st.next_arrival:
                st.sessions += 1
                s = st.session = cfg.mix.new_session(
                    st.rng(cfg.seed, "session"), f"{st.spec.station_id}-{st.sessions}", now
                )
                st.seq_no = 0
            if s is not None and not s.started and now >= retry_at:
                await self._report_if_changed()
                if await self.begin_tx():
                    s.started = True
                    changed = st.refresh(now, cfg.ac) or True
                else:
                    retry_at = now + self.meter_interval
            elif s is not None and s.started and s.done:
                await self.end_tx()
                st.session = None
                st.store.drop_tx()
                st.next_arrival = cfg.mix.next_arrival(st.rng(cfg.seed, "arrival"), now)
                changed = st.refresh(now, cfg.ac) or True
            await self._report_if_changed()
            if now >= next_meter:
                await self.send_meter("periodic")
                every = self.meter_interval
                next_meter = max(next_meter + every, now + every / 2)
                next_beat = now + self.heartbeat_every  # any message proves we are alive
            elif changed and cfg.report_on_change:
                await self.send_meter("change")
            if self.triggered:
                await self._serve_triggers()
            if now >= next_beat:
                await self.heartbeat()
                next_beat = now + self.heartbeat_every
            wake = min(next_meter, next_beat)
            if st.session is None:
                wake = min(wake, st.next_arrival)
            elif st.meter.watts > 0:
                s = st.session
                left_wh = s.target_kwh * 1000.0 - s.delivered_wh
                wake = min(wake, now + left_wh * 3600.0 / st.meter.watts + 0.001)
            lapse = st.next_change(now, wake)
            if lapse is not None:
                wake = lapse + 0.001
            delay = wake - self.clock()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _serve_triggers(self) -> None:
        wanted, self.triggered = self.triggered, set()
        if wanted & {"MeterValues", "TransactionEvent"}:
            await self.send_meter("change")
        if "StatusNotification" in wanted:
            self.reported_occupancy = None
            await self.report_state(self.connector_state())
        if "Heartbeat" in wanted:
            await self.heartbeat()

    async def _report_if_changed(self) -> None:
        state = self.connector_state()
        if state != self.reported:
            self.reported = state
            await self.report_state(state)
