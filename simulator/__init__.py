"""A fleet of real OCPP chargers (1.6J and 2.0.1, on the ocpp library) that obey profiles.

The load source for ``gridctl demo`` and the benchmarks. Pure parts (:mod:`.profiles`,
:mod:`.physics`, :mod:`.stations`) hold the rules; :mod:`.charger16`,
:mod:`.charger201` and :mod:`.link` move them over websockets; :mod:`.fleet` runs many.
"""

from simulator.charger import ChargerSettings
from simulator.errors import ConfigError, ProfileError, SimulatorError
from simulator.fleet import ChargerView, Fleet, FleetConfig, FleetSnapshot
from simulator.observe import Observations, ProfileEvent
from simulator.physics import SessionMix, StationSpec

__all__ = [
    "ChargerSettings",
    "ChargerView",
    "ConfigError",
    "Fleet",
    "FleetConfig",
    "FleetSnapshot",
    "Observations",
    "ProfileError",
    "ProfileEvent",
    "SessionMix",
    "SimulatorError",
    "StationSpec",
]
