"""Errors of the OCPP gateway, under one root.

::

    GatewayError
    ├── ConfigError            a setting that cannot work (e.g. a keyfile without a certfile)
    ├── FrameError             an OCPP-J frame we cannot route; carries the CallError ``code``
    │   └── (codes: FormationViolation / FormatViolation, ProtocolError, NotImplemented,
    │        TypeConstraintViolation, OccurrenceConstraintViolation ...)
    ├── AuthError              a handshake refused before the upgrade; carries the HTTP
    │                          ``status`` (401, 403, 404, 429, 503) and a reason
    ├── StationOffline         the charger's socket closed before it answered our call
    ├── ChargerRefused         the charger answered our call with a CallError ``code``
    └── CallPending            misuse (also a RuntimeError): a second call of ours while
                               one waits; OCPP allows one outstanding call per charger

Errors raised *inside* a handler that must reach the charger as a CallError are the ocpp
library's own ``OCPPError`` subclasses (``InternalError`` for "not durable yet"), which
carry their spec code; :meth:`ocpp_gateway.station.Station.handle` turns them (and any
unexpected exception, as ``InternalError``) into the CallError the charger gets.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's errors."""


class ConfigError(GatewayError, ValueError):
    """A configuration that cannot work; fix the flags or environment."""


class FrameError(GatewayError):
    """An incoming frame that is not valid OCPP-J.

    ``code`` is the CallError code to answer with; ``unique_id`` is the message id when it
    could be read (else ``"-1"``, as OCPP 2.0.1 prescribes for unreadable messages).
    """

    def __init__(self, code: str, reason: str, unique_id: str = "-1") -> None:
        self.code = code
        self.reason = reason
        self.unique_id = unique_id
        super().__init__(f"{code}: {reason}")


class AuthError(GatewayError):
    """A connection refused before the websocket upgrade.

    ``reason`` is what the charger is told; ``log_reason`` what only our log says (an
    unknown id and a wrong password answer alike); ``retry_after`` seconds go into a
    ``Retry-After`` header (429, 503).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        retry_after: int | None = None,
        *,
        log_reason: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.log_reason = log_reason or reason
        super().__init__(f"{status}: {reason}")


class StationOffline(GatewayError):
    """The charger disconnected before answering; its desired state waits for reconnect."""


class ChargerRefused(GatewayError):
    """The charger answered our call with a CallError (or a result breaking the schema)."""

    def __init__(self, code: str, description: str) -> None:
        self.code = code
        self.description = description
        super().__init__(f"{code}: {description}")


class CallPending(GatewayError, RuntimeError):
    """Misuse: a second call of ours while the first waits (OCPP allows one at a time)."""
