"""Meter values of both OCPP versions -> ``ocpp.meter_values`` records (pure, no I/O).

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pipeline.contracts import MeterValue

__all__ = ["NormaliseError", "meter_values_v16", "meter_values_v201", "parse_ts"]

Version = Literal["1.6", "2.0.1"]
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
VOLTAGE = "Voltage"
SOC = "SoC"
_FIELDS = {POWER: "power_kw", CURRENT: "current_a", VOLTAGE: "voltage_v", SOC: "soc_percent"}
_FIELDS[ENERGY] = "energy_kwh"
#: unit -> factor into the contract's unit (kW, kWh, A, V, %)
_SCALE = {
    "W": 1e-3, "kW": 1.0, "Wh": 1e-3, "kWh": 1.0, "A": 1.0, "V": 1.0, "Percent": 1.0,
}  # fmt: skip
_DEFAULT_UNIT = {ENERGY: "Wh", POWER: "W", CURRENT: "A", VOLTAGE: "V", SOC: "Percent"}
_PHASES = ("L1", "L2", "L3")
_PHASES_N = ("L1-N", "L2-N", "L3-N")
_LOCATION_RANK = {"Outlet": 0, None: 1, "Inlet": 2, "Cable": 3, "Body": 4, "EV": 5}


class NormaliseError(ValueError):
    """A sampled value that cannot be read (e.g. ``value: "abc"`` or an unknown unit)."""


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
        field = _FIELDS.get(measurand)
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
        measurand = next(m for m, f in _FIELDS.items() if f == field)
        combined = _combine(measurand, by_phase)
        if combined is not None:
            out[field] = combined
    soc = out.get("soc_percent")
    if soc is not None and not 0 <= soc <= 100:
        del out["soc_percent"]  # a broken SoC sensor must not make the record invalid
    return out


def _scale(measurand: str, unit: str | None, value: float) -> float:
    unit = unit or _DEFAULT_UNIT.get(measurand)
    factor = _SCALE.get(unit or "")
    if factor is None:
        raise NormaliseError(f"{measurand}: unit {unit!r} is not supported")
    return value * factor


def _samples_v16(sampled: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, Any, Any, float]]:
    for sv in sampled:
        if sv.get("format") == "SignedData":
            continue  # signed blobs carry no plain number
        measurand = sv.get("measurand") or ENERGY
        if measurand not in _FIELDS:
            continue
        try:
            number = float(sv["value"])
        except (KeyError, TypeError, ValueError):
            bad = sv.get("value")
            raise NormaliseError(f"{measurand}: value {bad!r} is not a number") from None
        yield (
            measurand,
            sv.get("location"),
            sv.get("phase"),
            _scale(measurand, sv.get("unit"), number),
        )


def _samples_v201(sampled: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, Any, Any, float]]:
    for sv in sampled:
        measurand = sv.get("measurand") or ENERGY
        if measurand not in _FIELDS:
            continue
        value = sv.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NormaliseError(f"{measurand}: value {value!r} is not a number")
        uom = sv.get("unit_of_measure") or {}
        number = float(value) * 10.0 ** int(uom.get("multiplier", 0) or 0)
        yield (
            measurand,
            sv.get("location"),
            sv.get("phase"),
            _scale(measurand, uom.get("unit"), number),
        )


def _records(
    version: Version,
    station_id: str,
    connector_id: int,
    session_id: str | None,
    meter_value: Iterable[Mapping[str, Any]],
    received_ts: datetime,
) -> list[MeterValue]:
    samples = _samples_v16 if version == "1.6" else _samples_v201
    out = []
    for mv in meter_value:
        values = _reduce(samples(mv.get("sampled_value") or ()))
        if not values:
            continue
        out.append(
            MeterValue(
                station_id=station_id,
                connector_id=connector_id,
                session_id=session_id,
                event_ts=parse_ts(mv.get("timestamp", "")),
                received_ts=received_ts,
                ocpp_version=version,
                **values,  # type: ignore[arg-type]
            )
        )
    return out


def meter_values_v16(
    station_id: str,
    connector_id: int,
    meter_value: Iterable[Mapping[str, Any]],
    *,
    session_id: str | None = None,
    received_ts: datetime | None = None,
) -> list[MeterValue]:
    """Records of a 1.6 ``MeterValues`` (or ``StopTransaction.transactionData``)."""
    received = received_ts or datetime.now(UTC)
    return _records("1.6", station_id, connector_id, session_id, meter_value, received)


def meter_values_v201(
    station_id: str,
    evse_id: int,
    meter_value: Iterable[Mapping[str, Any]],
    *,
    session_id: str | None = None,
    received_ts: datetime | None = None,
) -> list[MeterValue]:
    """Records of a 2.0.1 ``MeterValues`` or ``TransactionEvent.meterValue``."""
    received = received_ts or datetime.now(UTC)
    return _records("2.0.1", station_id, evse_id, session_id, meter_value, received)
