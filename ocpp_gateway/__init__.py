"""OCPP 1.6J / 2.0.1 central system: server, auth, handlers, normalisation, commands.

Usage (what ``gridctl run`` does)::

    bus = LocalBus(path)            # or KafkaBus(bootstrap); start it first
    await bus.start()
    gateway = Gateway(bus, GatewayConfig(host="0.0.0.0", port=9000))
    await gateway.start()           # loads credentials, zones, desired commands; listens
    ...                             # chargers: ws://HOST:9000/ocpp/{station_id}
    await gateway.stop()            # in-flight calls finish, chargers get close 1001

Metrics are served at ``http://HOST:PORT/metrics`` on the same port, ``/healthz`` too.
"""

from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import AuthError, ConfigError, FrameError, GatewayError, StationOffline
from ocpp_gateway.gateway import Gateway

__all__ = [
    "AuthError",
    "ConfigError",
    "FrameError",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "StationOffline",
]
