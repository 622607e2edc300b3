"""Charging profiles as a charger holds them, and the composite limit they give.

Pure: no sockets, no clock. Times are POSIX seconds (floats) passed in by the caller, so
tests can ask "what is the limit at validTo + 1 s" without waiting. Both OCPP versions
are parsed into one :class:`Profile`, so the composite rules are written once:

- within a purpose the valid profile with the highest stack level wins;
- a TxProfile replaces the TxDefaultProfile for the running transaction;
- the composite is the minimum of the station-wide maximum and the transaction limit;
- a profile outside ``[validFrom, validTo)`` or outside its schedule's duration does not
  limit at all (so a limit lapses by itself at ``validTo``, even with the CSMS gone).

Limits are kept in their own unit (W for the whole station or A per phase); the caller
converts with :func:`to_amps` using the phases actually in use.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from simulator.errors import ProfileError

Purpose = Literal["StationMax", "TxDefault", "Tx"]
Unit = Literal["W", "A"]

_PURPOSES_16 = {
    "ChargePointMaxProfile": "StationMax",
    "TxDefaultProfile": "TxDefault",
    "TxProfile": "Tx",
}
_PURPOSES_201 = {
    "ChargingStationMaxProfile": "StationMax",
    "TxDefaultProfile": "TxDefault",
    "TxProfile": "Tx",
}
_WEEK = 7 * 86400.0
_DAY = 86400.0


@dataclass(slots=True, frozen=True)
class Period:
    """One schedule period: from ``start`` s after the schedule start, at most ``limit``."""

    start: float
    limit: float
    number_phases: int | None = None


@dataclass(slots=True, frozen=True)
class Profile:
    """One installed charging profile, version-neutral."""

    profile_id: int
    stack_level: int
    purpose: Purpose
    kind: str  # Absolute | Recurring | Relative
    unit: Unit
    periods: tuple[Period, ...]
    connector_id: int = 0
    start_schedule: float | None = None
    duration: float | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    recurrency: str | None = None  # Daily | Weekly
    transaction_id: str | None = None
    received_at: float = 0.0

    def limit_at(self, t: float, tx_start: float | None = None) -> float | None:
        """The limit this profile sets at ``t``, or ``None`` when it does not apply."""
        if self.valid_from is not None and t < self.valid_from:
            return None
        if self.valid_to is not None and t >= self.valid_to:
            return None
        start = self._schedule_start(t, tx_start)
        if start is None:
            return None
        elapsed = t - start
        if elapsed < 0 or (self.duration is not None and elapsed >= self.duration):
            return None
        current: float | None = None
        for period in self.periods:
            if period.start <= elapsed:
                current = period.limit
            else:
                break
        return current

    def breakpoints(self, t0: float, t1: float, tx_start: float | None) -> list[float]:
        """Times in ``(t0, t1)`` where this profile's limit may change (for schedules)."""
        points: list[float] = []
        for edge in (self.valid_from, self.valid_to):
            if edge is not None and t0 < edge < t1:
                points.append(edge)
        start = self._schedule_start(t0, tx_start)
        if start is not None:
            offsets = [p.start for p in self.periods]
            if self.duration is not None:
                offsets.append(self.duration)
            points.extend(start + o for o in offsets if t0 < start + o < t1)
        return points

    def _schedule_start(self, t: float, tx_start: float | None) -> float | None:
        if self.kind == "Relative":
            return tx_start
        base = self.start_schedule
        if base is None:
            base = self.valid_from if self.valid_from is not None else self.received_at
        if self.kind == "Recurring":
            cycle = _WEEK if self.recurrency == "Weekly" else _DAY
            if t >= base:
                base += ((t - base) // cycle) * cycle
        return base


def composite(
    profiles: list[Profile] | tuple[Profile, ...],
    t: float,
    *,
    transaction_id: str | None = None,
    tx_start: float | None = None,
) -> dict[Purpose, Profile]:
    """The winning profile of each purpose at ``t`` (highest stack level that applies).

    TxProfiles count only for the running ``transaction_id`` (or when they name none);
    if a TxProfile wins, the TxDefault entry is dropped, as the spec says it replaces it.
    """
    best: dict[Purpose, Profile] = {}
    for profile in profiles:
        if profile.purpose == "Tx":
            if transaction_id is None:
                continue
            if profile.transaction_id not in (None, transaction_id):
                continue
        if profile.limit_at(t, tx_start) is None:
            continue
        held = best.get(profile.purpose)
        if held is None or profile.stack_level > held.stack_level:
            best[profile.purpose] = profile
    if "Tx" in best:
        best.pop("TxDefault", None)
    return best


def to_amps(limit: float, unit: Unit, *, voltage: float, phases: int) -> float:
    """A limit as amps per phase for ``phases`` conductors at ``voltage`` (line-neutral)."""
    if unit == "A":
        return limit
    return limit / (voltage * phases)


def limit_amps(
    profiles: list[Profile] | tuple[Profile, ...],
    t: float,
    *,
    voltage: float,
    phases: int,
    transaction_id: str | None = None,
    tx_start: float | None = None,
) -> float | None:
    """The composite limit in amps per phase at ``t``; ``None`` means no profile limits."""
    winners = composite(profiles, t, transaction_id=transaction_id, tx_start=tx_start)
    amps: float | None = None
    for profile in winners.values():
        limit = profile.limit_at(t, tx_start)
        assert limit is not None
        value = to_amps(limit, profile.unit, voltage=voltage, phases=phases)
        amps = value if amps is None else min(amps, value)
    return amps


# -- parsing ---------------------------------------------------------------------------


def parse_time(value: str | None) -> float | None:
    """RFC 3339 to POSIX seconds; a naive time is taken as UTC (lenient, like chargers)."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProfileError(f"bad timestamp {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def format_time(t: float) -> str:
    """POSIX seconds as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _periods(raw: list[dict[str, Any]]) -> tuple[Period, ...]:
    if not raw:
        raise ProfileError("chargingSchedulePeriod is empty")
    periods = tuple(
        Period(float(p["start_period"]), float(p["limit"]), p.get("number_phases")) for p in raw
    )
    if periods[0].start != 0:
        raise ProfileError("first chargingSchedulePeriod must start at 0")
    if any(p.limit < 0 for p in periods):
        raise ProfileError("negative limit")
    if any(b.start <= a.start for a, b in itertools.pairwise(periods)):
        raise ProfileError("chargingSchedulePeriod startPeriod not increasing")
    return periods


def parse_16(cs_charging_profiles: dict[str, Any], connector_id: int, now: float) -> Profile:
    """A 1.6 ``csChargingProfiles`` (snake_case dict, as the ocpp library hands it over)."""
    p = cs_charging_profiles
    purpose = _PURPOSES_16.get(p.get("charging_profile_purpose", ""))
    if purpose is None:
        raise ProfileError(f"unknown purpose {p.get('charging_profile_purpose')!r}")
    schedule = p["charging_schedule"]
    tx = p.get("transaction_id")
    return Profile(
        profile_id=int(p["charging_profile_id"]),
        stack_level=int(p["stack_level"]),
        purpose=purpose,  # type: ignore[arg-type]
        kind=p.get("charging_profile_kind", "Absolute"),
        unit=schedule["charging_rate_unit"],
        periods=_periods(schedule["charging_schedule_period"]),
        connector_id=connector_id,
        start_schedule=parse_time(schedule.get("start_schedule")),
        duration=schedule.get("duration"),
        valid_from=parse_time(p.get("valid_from")),
        valid_to=parse_time(p.get("valid_to")),
        recurrency=p.get("recurrency_kind"),
        transaction_id=None if tx is None else str(tx),
        received_at=now,
    )


def parse_201(charging_profile: dict[str, Any], evse_id: int, now: float) -> Profile:
    """A 2.0.1 ``chargingProfile``; only its first ``chargingSchedule`` is used."""
    p = charging_profile
    purpose = _PURPOSES_201.get(p.get("charging_profile_purpose", ""))
    if purpose is None:
        raise ProfileError(f"unknown purpose {p.get('charging_profile_purpose')!r}")
    schedules = p["charging_schedule"]
    if not schedules:
        raise ProfileError("chargingSchedule is empty")
    schedule = schedules[0]
    return Profile(
        profile_id=int(p["id"]),
        stack_level=int(p["stack_level"]),
        purpose=purpose,  # type: ignore[arg-type]
        kind=p.get("charging_profile_kind", "Absolute"),
        unit=schedule["charging_rate_unit"],
        periods=_periods(schedule["charging_schedule_period"]),
        connector_id=evse_id,
        start_schedule=parse_time(schedule.get("start_schedule")),
        duration=schedule.get("duration"),
        valid_from=parse_time(p.get("valid_from")),
        valid_to=parse_time(p.get("valid_to")),
        recurrency=p.get("recurrency_kind"),
        transaction_id=p.get("transaction_id"),
        received_at=now,
    )


class ProfileStore:
    """The profiles one charger holds, with the spec's replacement and clearing rules."""

    __slots__ = ("profiles",)

    def __init__(self) -> None:
        self.profiles: list[Profile] = []

    def install(self, profile: Profile) -> None:
        """Add ``profile``; it replaces one with the same id, or the same purpose and level."""
        self.profiles = [
            p
            for p in self.profiles
            if p.profile_id != profile.profile_id
            and not (
                p.purpose == profile.purpose
                and p.stack_level == profile.stack_level
                and p.connector_id == profile.connector_id
            )
        ]
        self.profiles.append(profile)

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """Remove matching profiles (all of them when nothing is given); return how many."""
        keep: list[Profile] = []
        for p in self.profiles:
            if profile_id is not None:
                match = p.profile_id == profile_id
            else:
                match = (
                    (connector_id is None or p.connector_id == connector_id)
                    and (purpose is None or p.purpose == purpose)
                    and (stack_level is None or p.stack_level == stack_level)
                )
            if not match:
                keep.append(p)
        removed = len(self.profiles) - len(keep)
        self.profiles = keep
        return removed

    def prune(self, t: float) -> None:
        """Forget profiles past ``validTo``: they can never limit again."""
        if any(p.valid_to is not None and p.valid_to <= t for p in self.profiles):
            self.profiles = [p for p in self.profiles if p.valid_to is None or p.valid_to > t]

    def drop_tx(self) -> None:
        """A transaction ended: its TxProfiles go with it (spec: they only live for it)."""
        if any(p.purpose == "Tx" for p in self.profiles):
            self.profiles = [p for p in self.profiles if p.purpose != "Tx"]
