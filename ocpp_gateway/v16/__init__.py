"""OCPP 1.6J: handlers, normalisation, profiles and capabilities, bound as :data:`DIALECT`."""

from __future__ import annotations

from ocpp.exceptions import FormationViolationError, OccurenceConstraintViolationError
from ocpp.v16.enums import Action

from ocpp_gateway.dialect import Dialect
from ocpp_gateway.schemas import Schemas
from ocpp_gateway.v16 import capabilities, profiles
from ocpp_gateway.v16.handlers import StationV16

__all__ = ["DIALECT", "StationV16"]

DIALECT = Dialect(
    name="1.6",
    subprotocol="ocpp1.6",
    # 1.6 misspells two codes; its schema files are named by action alone
    schemas=Schemas(
        "v16",
        ("{action}", "{action}Response"),
        OccurenceConstraintViolationError,
        FormationViolationError,
    ),
    known_actions=frozenset(a.value for a in Action),
    station=StationV16,
    purposes=profiles.PURPOSES,
    set_profile=profiles.set_profile,
    clear_profile=profiles.clear_profile,
    capability_query=capabilities.QUERY,
    read_capabilities=capabilities.read,
)
