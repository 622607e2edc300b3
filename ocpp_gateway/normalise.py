"""Meter values -> ``ocpp.meter_values`` records: the rules both OCPP versions share (pure).

Input is what the handlers receive: the ocpp library's snake_case dicts. One record per
``meterValue`` element (one timestamped sample of one connector/EVSE). Rules, per spec:

- a sampled value without ``measurand`` is ``Energy.Active.Import.Register``; without
  ``unit`` it has the measurand's base unit (1.6: ``Wh`` for energy, ``W`` for power ...);
- 1.6 values are decimal strings, 2.0.1 values numbers scaled by
  ``unitOfMeasure.multiplier`` (a power of ten);
- power and current: a phase-less value is the total and wins; otherwise L1+L2+L3 (or the
  L-N values) are summed; voltage is averaged over phases, never summed;
- ``location`` Outlet is preferred, then a value without location, then Inlet; EV-side
  values are only used for SoC;
- a measurand not present is ``None``, never 0; a sample without any of the five
  measurands we carry yields no record.

Unparseable numbers raise :class:`NormaliseError`; the handler answers with a
FormatViolation so the charger learns its data is broken instead of it being dropped.
Physically impossible readings raise :class:`ImplausibleReading` (answered with a
PropertyConstraintViolation): they are never published, so never summed into load:

- a unit that is not one of its measurand's (``Wh`` for ``Power.Active.Import``);
- a value that is not finite (``"NaN"``, ``"Infinity"``, ``1e400``, a 2.0.1
  ``multiplier`` outside -9..9, whose power of ten makes no sense for a meter);
- negative import power, current, voltage or energy (power and current within
  :data:`NOISE_KW` / :data:`NOISE_A` below zero are meter noise at idle and read as 0);
- power, current or voltage above :class:`Bounds` (the station's own maximum times a
  factor when the gateway knows it, else an absolute bound).

Time is the gateway's: a sample stamped more than ``Bounds.max_skew_s`` away from the
received time gets the received time as ``event_ts`` and keeps the charger's time in
``charger_ts``, so one charger's clock cannot move the pipeline's watermark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from pipeline.contracts import MeterValue

__all__ = [
    "DEFAULT_BOUNDS",
    "ENERGY",
    "FIELDS",
    "Bounds",
    "ImplausibleReading",
    "NormaliseError",
    "Samples",
    "bound_time",
    "parse_ts",
    "records",
    "scale",
    "zero_from",
]

#: a version's reader: sampledValue list -> (measurand, location, phase, contract value)
Samples = Callable[[Iterable[Mapping[str, Any]]], Iterable[tuple[str, Any, Any, float]]]
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
VOLTAGE = "Voltage"
SOC = "SoC"
FIELDS = {POWER: "power_kw", CURRENT: "current_a", VOLTAGE: "voltage_v", SOC: "soc_percent"}
FIELDS[ENERGY] = "energy_kwh"
#: measurand -> its units -> factor into the contract's unit (kW, kWh, A, V, %)
_UNITS: dict[str, dict[str, float]] = {
    POWER: {"W": 1e-3, "kW": 1.0},
    ENERGY: {"Wh": 1e-3, "kWh": 1.0},
    CURRENT: {"A": 1.0},
    VOLTAGE: {"V": 1.0},
    SOC: {"Percent": 1.0},
}
_MEASURAND = {f: m for m, f in FIELDS.items()}  # field -> measurand
_DEFAULT_UNIT = {ENERGY: "Wh", POWER: "W", CURRENT: "A", VOLTAGE: "V", SOC: "Percent"}
#: idle meters report a little below zero; within this much it reads as 0
NOISE_KW = 0.05
NOISE_A = 0.5
_NOISE = {POWER: NOISE_KW, CURRENT: NOISE_A}
_PHASES = ("L1", "L2", "L3")
_PHASES_N = ("L1-N", "L2-N", "L3-N")
_LOCATION_RANK = {"Outlet": 0, None: 1, "Inlet": 2, "Cable": 3, "Body": 4, "EV": 5}


class NormaliseError(ValueError):
    """A sampled value that cannot be read (e.g. ``value: "abc"``): a FormatViolation."""

    code = "FormatViolation"


class ImplausibleReading(NormaliseError):
    """A reading no meter can take (negative import, NaN, power in Wh, above the station's
    maximum): a PropertyConstraintViolation; the charger must fix its data, we store none.
    """

    code = "PropertyConstraintViolation"


@dataclass(frozen=True, slots=True)
class Bounds:
    """What a plausible sample of one station looks like (built per call by the station).

    Absolute defaults are above any charger built (the Megawatt Charging System: 3,000 A,
    1,250 V, 3.75 MW); with the station's ``max_station_kw`` known, power above it times
    ``GatewayConfig.max_power_factor`` is refused instead.
    """

    max_skew_s: float = 5.0
    max_power_kw: float = 4000.0
    max_current_a: float = 5000.0
    max_voltage_v: float = 2000.0


DEFAULT_BOUNDS = Bounds()


#: A reading cannot be measured after it arrived: beyond this (network and rounding) a
#: charger's clock is ahead, and its time would move the pipeline's watermark for everyone.
MAX_AHEAD_S = 1.0


def bound_time(
    charger_ts: datetime, received_ts: datetime, max_skew_s: float
) -> tuple[datetime, datetime | None]:
    """``(event_ts, charger_ts or None)``: the charger's time if it lies within
    ``[received - max_skew_s, received + MAX_AHEAD_S]``, else ours.

    The sources' watermark is ``max(event_ts) - watermark_seconds`` (10 s) on both
    engines, and rows below it are dropped: a charger ahead of us would push it past
    everyone else's samples, one behind by more than the delay would have all of its own
    dropped. Keeping ``event_ts`` within a few seconds of our clock keeps both out.
    """
    ahead = (charger_ts - received_ts).total_seconds()
    if -max_skew_s <= ahead <= MAX_AHEAD_S:
        return charger_ts, None
    return received_ts, charger_ts


def parse_ts(value: str) -> datetime:
    """RFC 3339 from a charger; a timestamp without offset is taken as UTC."""
    try:
        ts = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise NormaliseError(f"timestamp {value!r} is not RFC 3339") from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _combine(measurand: str, by_phase: Mapping[str | None, float]) -> float | None:
    if None in by_phase:
        return by_phase[None]  # the charger's own total (or the only value)
    if measurand == VOLTAGE:
        for group in (_PHASES_N, _PHASES):
            values = [by_phase[p] for p in group if p in by_phase]
            if values:
                return sum(values) / len(values)
        values = list(by_phase.values())
        return sum(values) / len(values) if values else None
    for group in (_PHASES, _PHASES_N):
        values = [by_phase[p] for p in group if p in by_phase]
        if values:
            return sum(values)
    return None  # only N or line-line values: not a total we can use


def _reduce(samples: Iterable[tuple[str, str | None, str | None, float]]) -> dict[str, float]:
    """(measurand, location, phase, value in contract units) -> one value per field."""
    best: dict[str, tuple[int, dict[str | None, float]]] = {}
    for measurand, location, phase, value in samples:
        field = FIELDS.get(measurand)
        if field is None:
            continue
        rank = _LOCATION_RANK.get(location, 6)
        if rank == 5 and measurand != SOC:
            continue  # EV-side power/energy is not what the grid sees
        current = best.get(field)
        if current is None or rank < current[0]:
            best[field] = (rank, {phase: value})
        elif rank == current[0]:
            current[1][phase] = value
    out: dict[str, float] = {}
    for field, (_, by_phase) in best.items():
        combined = _combine(_MEASURAND[field], by_phase)
        if combined is not None:
            out[field] = combined
    soc = out.get("soc_percent")
    if soc is not None and not 0 <= soc <= 100:
        del out["soc_percent"]  # a broken SoC sensor must not make the record invalid
    return out


def scale(measurand: str, unit: str | None, value: float) -> float:
    unit = unit or _DEFAULT_UNIT[measurand]
    factor = _UNITS[measurand].get(unit)
    if factor is None:
        units = ", ".join(_UNITS[measurand])
        raise ImplausibleReading(f"{measurand}: unit {unit[:16]!r} is not one of {units}")
    scaled = value * factor
    if measurand == SOC:
        return scaled  # a broken SoC sensor is dropped in _reduce, the record stays
    if not math.isfinite(scaled):
        raise ImplausibleReading(f"{measurand}: value {value!r} is not finite")
    if scaled < 0:
        if scaled >= -_NOISE.get(measurand, 0.0):
            return 0.0
        raise ImplausibleReading(f"{measurand}: {value!r} {unit} is negative")
    return scaled


def _check_limits(values: Mapping[str, float], bounds: Bounds) -> None:
    for field, limit, unit in (
        ("power_kw", bounds.max_power_kw, "kW"),
        ("current_a", bounds.max_current_a, "A"),
        ("voltage_v", bounds.max_voltage_v, "V"),
    ):
        value = values.get(field)
        if value is not None and value > limit:
            raise ImplausibleReading(f"{field} {value:g} {unit} is above this station's {limit:g}")


def records(
    version: str,
    samples: Samples,
    station_id: str,
    connector_id: int,
    session_id: str | None,
    meter_value: Iterable[Mapping[str, Any]],
    received_ts: datetime,
    bounds: Bounds,
    sampled_key: str = "sampled_value",
) -> list[MeterValue]:
    """One record per ``meterValue`` element that carries one of our measurands.

    ``samples`` is the version's reader of ``sampledValue`` (``v16.normalise`` ...):
    (measurand, location, phase, value in contract units) per sampled value.
    ``sampled_key``: ``sampledValue`` for a payload read raw (not made snake_case).
    """
    out = []
    for mv in meter_value:
        values = _reduce(samples(mv.get(sampled_key) or ()))
        if not values:
            continue
        _check_limits(values, bounds)
        event_ts, charger_ts = bound_time(
            parse_ts(mv.get("timestamp", "")), received_ts, bounds.max_skew_s
        )
        out.append(
            MeterValue(
                station_id=station_id,
                connector_id=connector_id,
                session_id=session_id,
                event_ts=event_ts,
                received_ts=received_ts,
                charger_ts=charger_ts,
                ocpp_version=version,  # type: ignore[arg-type]  # the dialect's name
                **values,  # type: ignore[arg-type]
            )
        )
    return out


def zero_from(records: Iterable[MeterValue], end_ts: datetime) -> list[MeterValue]:
    """The readings of a transaction's last message, those at or after its end at 0 kW.

    Once a session ended its connector draws nothing, whatever the final sample says;
    the engine counts the latest sample per connector, so the end must be the latest one
    and read 0 (an ended session is not active and reserves no floor).
    """
    return [
        msgspec.structs.replace(r, power_kw=0.0) if r.event_ts >= end_ts else r for r in records
    ]
