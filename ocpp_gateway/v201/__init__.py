"""OCPP 2.0.1: handlers, normalisation, profiles and capabilities, bound as :data:`DIALECT`."""

from __future__ import annotations

from ocpp.exceptions import FormatViolationError, OccurrenceConstraintViolationError
from ocpp.v201.enums import Action

from ocpp_gateway.dialect import Dialect
from ocpp_gateway.schemas import Schemas
from ocpp_gateway.v201 import capabilities, profiles
from ocpp_gateway.v201.handlers import StationV201

__all__ = ["DIALECT", "StationV201"]

DIALECT = Dialect(
    name="2.0.1",
    subprotocol="ocpp2.0.1",
    schemas=Schemas(
        "v201",
        ("{action}Request", "{action}Response"),
        OccurrenceConstraintViolationError,
        FormatViolationError,
    ),
    known_actions=frozenset(a.value for a in Action),
    station=StationV201,
    purposes=profiles.PURPOSES,
    set_profile=profiles.set_profile,
    clear_profile=profiles.clear_profile,
    capability_query=capabilities.QUERY,
    read_capabilities=capabilities.read,
)
