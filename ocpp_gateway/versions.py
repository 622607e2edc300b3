"""The OCPP versions the gateway speaks, by websocket subprotocol (our preference first).

This list is the only place that names the versions: the server offers these
subprotocols, and each connection gets the :class:`~ocpp_gateway.dialect.Dialect` its
charger negotiated. OCPP 2.1 would be a ``v21`` package and one more entry here.
"""

from __future__ import annotations

from ocpp_gateway import v16, v201
from ocpp_gateway.dialect import Dialect

__all__ = ["DIALECTS", "SUBPROTOCOLS"]

#: subprotocol -> dialect, in the order the server prefers them
DIALECTS: dict[str, Dialect] = {d.subprotocol: d for d in (v201.DIALECT, v16.DIALECT)}
SUBPROTOCOLS: tuple[str, ...] = tuple(DIALECTS)
