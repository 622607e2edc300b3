"""What a 2.0.1 station takes: SmartChargingCtrlr variables, asked once per connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocpp_gateway.profiles import UNKNOWN, Capabilities, parse_units

__all__ = ["QUERY", "read"]

QUERY = (
    "GetVariables",
    {
        "getVariableData": [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": name}}
            for name in ("RateUnit", "ProfileStackLevel")
        ]
    },
)


def read(answer: Mapping[str, Any]) -> Capabilities:
    """A GetVariables answer -> capabilities (variables not Accepted keep the defaults)."""
    values = {
        r["variable"]["name"]: r.get("attributeValue")
        for r in answer["getVariableResult"]
        if r.get("attributeStatus") == "Accepted"
    }
    units, level = values.get("RateUnit"), values.get("ProfileStackLevel")
    return Capabilities(
        units=parse_units(units) if units else UNKNOWN.units,
        max_stack_level=int(level) if level else None,
    )
