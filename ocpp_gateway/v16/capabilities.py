"""What a 1.6 charger takes: two GetConfiguration keys, asked once per connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocpp_gateway.profiles import UNKNOWN, Capabilities, parse_units

__all__ = ["QUERY", "read"]

_UNITS = "ChargingScheduleAllowedChargingRateUnit"
_LEVEL = "ChargeProfileMaxStackLevel"
QUERY = ("GetConfiguration", {"key": [_UNITS, _LEVEL]})


def read(answer: Mapping[str, Any]) -> Capabilities:
    """A GetConfiguration answer -> capabilities (unknown keys keep the defaults)."""
    values = {k["key"]: k.get("value") for k in answer.get("configurationKey") or ()}
    units, level = values.get(_UNITS), values.get(_LEVEL)
    return Capabilities(
        units=parse_units(units) if units else UNKNOWN.units,
        max_stack_level=int(level) if level else None,
    )
