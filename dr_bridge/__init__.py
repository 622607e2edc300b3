"""DR signal intake: HTTP API, OpenADR 2.0b VEN, OpenADR 3 VEN, revision store.

Every way in ends as one record per revision on ``grid.demand_response``.
"""

from dr_bridge.bridge import Bridge
from dr_bridge.config import BridgeSettings, OpenADR2Settings, OpenADR3Settings

__all__ = ["Bridge", "BridgeSettings", "OpenADR2Settings", "OpenADR3Settings"]
