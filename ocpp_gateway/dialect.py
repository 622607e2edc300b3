"""What one OCPP version brings to the gateway, as one value chosen at connection.

Each version package (:mod:`ocpp_gateway.v16`, :mod:`ocpp_gateway.v201`) builds one
:class:`Dialect` from its modules of the same names (``handlers``, ``normalise``,
``profiles``, ``capabilities``); the server picks it by the negotiated subprotocol, and
nothing outside the version packages asks which version it is talking to. Adding a
version is adding a package and listing it in :data:`ocpp_gateway.versions.DIALECTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ocpp_gateway.profiles import Capabilities
from ocpp_gateway.schemas import Schemas
from pipeline.contracts import SetChargingProfileCommand, StationZone

__all__ = ["Dialect", "ProfileBuilder", "StationClass"]

#: (command, zone, purpose, now, start_offset_s, capabilities) -> SetChargingProfile payload
ProfileBuilder = Callable[
    [SetChargingProfileCommand, StationZone | None, str, datetime, int, Capabilities],
    dict[str, Any],
]


class StationClass(Protocol):
    """A version's handler class (a ``station.Station`` subclass), seen from here."""

    def __call__(self, station_id: str, dialect: Dialect, ctx: Any) -> Any: ...

    def handled(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True, eq=False)
class Dialect:
    """One OCPP version: its schemas, handlers, profile payloads and capability query.

    Payloads here are wire payloads (camelCase JSON objects), built once and sent as they
    are: no dataclass or key conversion on our send path.
    """

    #: the contract's ``ocpp_version`` ("1.6", "2.0.1")
    name: str
    #: the websocket subprotocol ("ocpp1.6")
    subprotocol: str
    schemas: Schemas
    #: every action of this version (a known one without a handler is NotSupported)
    known_actions: frozenset[str]
    #: ``(station_id, dialect, context) -> Station``: the version's handler class
    station: StationClass
    #: SetChargingProfile purposes to try in order: the station-wide cap, then fallbacks
    purposes: tuple[str, ...]
    set_profile: ProfileBuilder
    #: station id -> ClearChargingProfile payload for our profile
    clear_profile: Callable[[str], dict[str, Any]]
    #: (action, payload) that asks a charger what profiles it takes
    capability_query: tuple[str, dict[str, Any]]
    #: the answer to that query -> :class:`Capabilities` (raises KeyError/ValueError)
    read_capabilities: Callable[[Mapping[str, Any]], Capabilities]

    @property
    def format_violation(self) -> str:
        """This version's spelling of the FormatViolation code."""
        return str(self.schemas.formation.code)
