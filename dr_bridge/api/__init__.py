"""The HTTP API of the bridge: DR signals, stations, health and metrics."""

from dr_bridge.api.app import create_app

__all__ = ["create_app"]
