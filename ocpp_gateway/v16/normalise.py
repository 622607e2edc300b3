"""1.6 sampled values: decimal strings in the unit named (pure).

The shared rules (defaults, phases, locations, bounds) are :mod:`ocpp_gateway.normalise`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ocpp_gateway.normalise import (
    DEFAULT_BOUNDS,
    ENERGY,
    FIELDS,
    Bounds,
    NormaliseError,
    records,
    scale,
)
from pipeline.contracts import MeterValue

__all__ = ["meter_values", "samples"]


def samples(sampled: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, Any, Any, float]]:
    for sv in sampled:
        if sv.get("format") == "SignedData":
            continue  # signed blobs carry no plain number
        measurand = sv.get("measurand") or ENERGY
        if measurand not in FIELDS:
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
            scale(measurand, sv.get("unit"), number),
        )


def meter_values(
    station_id: str,
    connector_id: int,
    meter_value: Iterable[Mapping[str, Any]],
    *,
    session_id: str | None = None,
    received_ts: datetime | None = None,
    bounds: Bounds = DEFAULT_BOUNDS,
    camel: bool = False,
) -> list[MeterValue]:
    """Records of a 1.6 ``MeterValues`` (or ``StopTransaction.transactionData``).

    ``camel``: ``meter_value`` is as the charger sent it (``sampledValue``); a sampled
    value's own keys are one word each, the same in either case.
    """
    received = received_ts or datetime.now(UTC)
    return records("1.6", samples, station_id, connector_id, session_id, meter_value,
                   received, bounds, "sampledValue" if camel else "sampled_value")  # fmt: skip
