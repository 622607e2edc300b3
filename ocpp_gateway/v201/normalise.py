"""2.0.1 sampled values: numbers scaled by ``unitOfMeasure.multiplier`` (pure).

The shared rules (defaults, phases, locations, bounds) are :mod:`ocpp_gateway.normalise`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ocpp_gateway.normalise import (
    DEFAULT_BOUNDS,
    ENERGY,
    FIELDS,
    Bounds,
    ImplausibleReading,
    NormaliseError,
    records,
    scale,
)
from pipeline.contracts import MeterValue

__all__ = ["meter_values", "samples"]

_MAX_MULTIPLIER = 9
_Sample = tuple[str, Any, Any, float]


def _reader(uom_key: str) -> Callable[[Iterable[Mapping[str, Any]]], Iterator[_Sample]]:
    """A sampledValue reader; ``uom_key``: ``unit_of_measure``, or ``unitOfMeasure`` for
    a payload read raw (the other keys are one word, the same in either case)."""

    def samples(sampled: Iterable[Mapping[str, Any]]) -> Iterator[_Sample]:
        for sv in sampled:
            measurand = sv.get("measurand") or ENERGY
            if measurand not in FIELDS:
                continue
            value = sv.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise NormaliseError(f"{measurand}: value {value!r} is not a number")
            uom = sv.get(uom_key) or {}
            multiplier = uom.get("multiplier", 0) or 0
            if not -_MAX_MULTIPLIER <= multiplier <= _MAX_MULTIPLIER:
                raise ImplausibleReading(
                    f"{measurand}: multiplier {multiplier} is outside -9..9"[:120]
                )
            number = float(value) * 10.0 ** int(multiplier)
            yield (
                measurand,
                sv.get("location"),
                sv.get("phase"),
                scale(measurand, uom.get("unit"), number),
            )

    return samples


samples = _reader("unit_of_measure")
_samples_raw = _reader("unitOfMeasure")


def meter_values(
    station_id: str,
    evse_id: int,
    meter_value: Iterable[Mapping[str, Any]],
    *,
    session_id: str | None = None,
    received_ts: datetime | None = None,
    bounds: Bounds = DEFAULT_BOUNDS,
    camel: bool = False,
) -> list[MeterValue]:
    """Records of a 2.0.1 ``MeterValues`` or ``TransactionEvent.meterValue``.

    ``camel``: ``meter_value`` is as the charger sent it (``sampledValue``,
    ``unitOfMeasure``).
    """
    received = received_ts or datetime.now(UTC)
    if camel:
        return records("2.0.1", _samples_raw, station_id, evse_id, session_id, meter_value,
                       received, bounds, "sampledValue")  # fmt: skip
    return records("2.0.1", samples, station_id, evse_id, session_id, meter_value,
                   received, bounds)  # fmt: skip
