"""What a charger draws: EV sessions, the hardware, the composite limit and the 6 A floor.

Pure: the caller passes the time (POSIX seconds) and a ``random.Random``; nothing here
sleeps or talks. A charger object holds one :class:`Meter` (the energy register and the
present draw) and at most one :class:`EvSession`; both are small slotted objects, since
a fleet of 10,000 chargers keeps 10,000 of them.

How the draw is decided (``decide``):

1. the phases in use are the fewer of the station's and the car's;
2. the cap in amps per phase is the lowest of the station hardware, the car (tapering
   above 80 % state of charge) and the composite profile limit;
3. AC cannot signal less than 6 A per phase, so a profile cap below 6 A pauses the
   session at 0 rather than drawing below the floor (0 is an explicit pause too);
4. power = amps x volts x phases in use, so the draw is never above the composite limit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator import profiles as prof

#: IEC 61851: the lowest PWM current an AC charger can offer a car.
AC_FLOOR_AMPS = 6.0


@dataclass(slots=True, frozen=True)
class StationSpec:
    """A simulated station: identity, zone, hardware limits and credentials."""

    station_id: str
    zone_id: str
    max_station_kw: float = 11.0
    contract_max_kw: float = 11.0
    min_active_kw: float = 4.2
    charging_rate_unit: str = "W"
    phases: int = 3
    voltage_v: float = 230.0
    password: str = ""
    ocpp_version: str = "1.6"
    reject_max_profile: bool = False

    @property
    def max_amps(self) -> float:
        """Hardware cap per phase."""
        return self.max_station_kw * 1000.0 / (self.voltage_v * self.phases)


@dataclass(slots=True)
class EvSession:
    """One car plugged in: how much it wants and how fast it can take it."""

    session_id: str
    arrival: float
    capacity_kwh: float
    soc_start: float  # percent
    target_kwh: float
    ev_phases: int
    ev_max_amps: float
    delivered_wh: float = 0.0
    started: bool = False  # the transaction was opened with the CSMS
    tx_id: str | None = None  # what the CSMS calls it (1.6 int as str, 2.0.1 ours)

    @property
    def soc(self) -> float:
        return min(100.0, self.soc_start + 100.0 * self.delivered_wh / 1000.0 / self.capacity_kwh)

    @property
    def done(self) -> bool:
        return self.delivered_wh >= self.target_kwh * 1000.0 or self.soc >= 100.0

    def accept_amps(self) -> float:
        """What the car takes per phase: full current to 80 % SoC, then a linear taper."""
        soc = self.soc
        if soc <= 80.0:
            return self.ev_max_amps
        return max(0.0, self.ev_max_amps * (100.0 - soc) / 20.0)


@dataclass(slots=True, frozen=True)
class Draw:
    """The decided draw: per-phase amps, total watts, what is offered, whether paused."""

    amps: float
    watts: float
    offered_w: float
    phases: int
    paused: bool


def decide(
    spec: StationSpec, session: EvSession | None, limit_amps: float | None, *, ac: bool = True
) -> Draw:
    """The draw for a profile cap of ``limit_amps`` per phase (``None`` = no profile)."""
    phases = min(spec.phases, session.ev_phases) if session else spec.phases
    cap = spec.max_amps if limit_amps is None else min(spec.max_amps, limit_amps)
    floor = AC_FLOOR_AMPS if ac else 0.0
    paused = cap <= 0.0 or cap < floor
    offered_amps = 0.0 if paused else cap
    offered_w = offered_amps * spec.voltage_v * phases
    if session is None or session.done:
        return Draw(0.0, 0.0, offered_w, phases, paused)
    amps = 0.0 if paused else min(cap, session.accept_amps())
    return Draw(amps, amps * spec.voltage_v * phases, offered_w, phases, paused)


def limit_for(
    spec: StationSpec, store: prof.ProfileStore, session: EvSession | None, t: float
) -> float | None:
    """The composite profile cap in amps per phase at ``t`` for this station's session."""
    phases = min(spec.phases, session.ev_phases) if session else spec.phases
    return prof.limit_amps(
        store.profiles,
        t,
        voltage=spec.voltage_v,
        phases=phases,
        transaction_id=session.tx_id if session and session.started else None,
        tx_start=session.arrival if session else None,
    )


class Meter:
    """The energy register and the present draw, integrated between updates."""

    __slots__ = ("amps", "energy_wh", "offered_w", "paused", "phases", "t", "watts")

    def __init__(self, t: float, energy_wh: float = 0.0) -> None:
        self.t = t
        self.energy_wh = energy_wh
        self.watts = 0.0
        self.amps = 0.0
        self.offered_w = 0.0
        self.phases = 3
        self.paused = False

    def advance(self, t: float, session: EvSession | None) -> None:
        """Integrate the present draw up to ``t`` into the register and the session."""
        dt = max(0.0, t - self.t)
        self.t = max(self.t, t)
        if dt and self.watts:
            wh = self.watts * dt / 3600.0
            if session is not None:
                room = session.target_kwh * 1000.0 - session.delivered_wh
                wh = max(0.0, min(wh, room))
                session.delivered_wh += wh
            self.energy_wh += wh

    def apply(self, draw: Draw) -> bool:
        """Take a new draw; True when what a CSMS would see changed (power or offer)."""
        changed = (
            abs(draw.watts - self.watts) >= 1.0
            or abs(draw.offered_w - self.offered_w) >= 1.0
            or draw.paused != self.paused
        )
        self.watts, self.amps, self.offered_w = draw.watts, draw.amps, draw.offered_w
        self.phases, self.paused = draw.phases, draw.paused
        return changed


@dataclass(slots=True, frozen=True)
class SessionMix:
    """How sessions arrive and what cars want; the defaults look like a workplace car park."""

    occupancy: float = 0.8  # chance a car is plugged in at start
    mean_idle_s: float = 900.0  # mean gap between a car leaving and the next arriving
    target_kwh: tuple[float, float] = (8.0, 40.0)
    capacity_kwh: tuple[float, float] = (40.0, 90.0)
    soc_start: tuple[float, float] = (10.0, 60.0)
    single_phase_share: float = 0.2
    ev_max_amps: tuple[float, ...] = (16.0, 32.0)

    def first_arrival(self, rng: random.Random, now: float) -> float:
        """When the first car arrives: now for occupied chargers, later for the rest."""
        if rng.random() < self.occupancy:
            return now
        return now + rng.expovariate(1.0 / self.mean_idle_s) if self.mean_idle_s > 0 else now

    def next_arrival(self, rng: random.Random, now: float) -> float:
        return now + (rng.expovariate(1.0 / self.mean_idle_s) if self.mean_idle_s > 0 else 0.0)

    def new_session(self, rng: random.Random, session_id: str, now: float) -> EvSession:
        capacity = rng.uniform(*self.capacity_kwh)
        soc = rng.uniform(*self.soc_start)
        room = capacity * (100.0 - soc) / 100.0
        return EvSession(
            session_id=session_id,
            arrival=now,
            capacity_kwh=capacity,
            soc_start=soc,
            target_kwh=min(room, rng.uniform(*self.target_kwh)),
            ev_phases=1 if rng.random() < self.single_phase_share else 3,
            ev_max_amps=rng.choice(self.ev_max_amps),
        )
