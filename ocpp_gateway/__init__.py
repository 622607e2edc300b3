"""OCPP 1.6J / 2.0.1 central system: server, auth, handlers, normalisation, commands.

``Gateway(bus, GatewayConfig(...))`` is the entry point; the rest is importable for tests
and tools.
"""

from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import AuthError, ConfigError, FrameError, GatewayError
from ocpp_gateway.gateway import Gateway

__all__ = ["AuthError", "ConfigError", "FrameError", "Gateway", "GatewayConfig", "GatewayError"]
