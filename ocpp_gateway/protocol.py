"""OCPP-J as a sans-I/O state machine: text in, events out, text to send back.

In the manner of python-websockets' ``Protocol``: :class:`OcppProtocol` never touches a
socket or an event loop. The connection adapter feeds it every text frame with
:meth:`~OcppProtocol.receive` and sends whatever :meth:`~OcppProtocol.data_to_send`
returns; handlers answer through :meth:`~OcppProtocol.send_result` /
:meth:`~OcppProtocol.send_error`; our own requests go out through
:meth:`~OcppProtocol.send_call`, which owns the message ids and matches the charger's
answers to them.

What the protocol settles by itself, so the adapter never has to: a frame that is not
OCPP-J, an action this version does not define or we do not handle, a payload that breaks
the version's schema (each answered with the right CallError, as :class:`Refused`), and an
answer to nothing we asked (dropped, as :class:`Ignored`: queueing it would let a confused
charger grow memory without bound). Parsing never raises into the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ocpp.exceptions import OCPPError

from ocpp_gateway import frames
from ocpp_gateway.dialect import Dialect
from ocpp_gateway.errors import CallPending, FrameError

__all__ = [
    "CallReceived",
    "ErrorReceived",
    "Event",
    "Ignored",
    "OcppProtocol",
    "Refused",
    "ResultReceived",
]


@dataclass(frozen=True, slots=True)
class CallReceived:
    """The charger asks; answer with ``send_result`` or ``send_error`` (once)."""

    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResultReceived:
    """The charger answered our call ``action`` (its payload passed the schema)."""

    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The charger answered our call with a CallError, or with a result that breaks the
    schema (then ``code`` is the version's FormatViolation spelling)."""

    unique_id: str
    action: str
    code: str
    description: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A frame we answered with a CallError ourselves; the adapter only logs and counts."""

    unique_id: str
    action: str | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An answer to no call of ours (late after a timeout, or made up): dropped."""

    unique_id: str


Event = CallReceived | ResultReceived | ErrorReceived | Refused | Ignored


class OcppProtocol:
    """One connection's OCPP-J state: outgoing text and our call awaiting its answer.

    ``handled``: the actions the station's handlers take; ``validate``: check payloads
    against the schemas (incoming calls, our calls and the answers to them).
    """

    def __init__(self, dialect: Dialect, handled: frozenset[str], *, validate: bool = True):
        self.dialect = dialect
        self.handled = handled
        self.validate = validate
        self._out: list[str] = []
        #: our call waiting for its answer: (message id, action); OCPP allows one at a time
        self.pending: tuple[str, str] | None = None
        self._ids = itertools.count(1)

    # -- receiving ---------------------------------------------------------------------
    def receive(self, raw: str | bytes) -> Event:
        """Parse one frame from the charger into the event it means."""
        try:
            msg = frames.decode(raw, self.dialect.format_violation)
        except FrameError as exc:
            return self._refuse(exc.unique_id, None, exc.code, exc.reason)
        if isinstance(msg, frames.Call):
            return self._call(msg)
        pending = self.pending
        if pending is None or pending[0] != msg.unique_id:
            return Ignored(msg.unique_id)
        self.pending = None
        action = pending[1]
        if isinstance(msg, frames.CallError):
            return ErrorReceived(msg.unique_id, action, msg.code, msg.description)
        if self.validate:
            try:
                self.dialect.schemas.validate(action, msg.payload, response=True)
            except OCPPError as exc:
                return ErrorReceived(msg.unique_id, action, exc.code, exc.description)
        return ResultReceived(msg.unique_id, action, msg.payload)

    def _call(self, msg: frames.Call) -> Event:
        action = msg.action
        if action not in self.handled:
            code = "NotSupported" if action in self.dialect.known_actions else "NotImplemented"
            return self._refuse(
                msg.unique_id, action, code, f"action {action[:64]!r} is not handled"
            )
        if self.validate:
            try:
                self.dialect.schemas.validate(action, msg.payload)
            except OCPPError as exc:
                return self._refuse(msg.unique_id, action, exc.code, exc.description)
        return CallReceived(msg.unique_id, action, msg.payload)

    def _refuse(self, unique_id: str, action: str | None, code: str, reason: str) -> Refused:
        self._out.append(frames.encode_call_error(unique_id, code, reason))
        return Refused(unique_id, action, code, reason)

    # -- answering the charger -----------------------------------------------------------
    def send_result(self, unique_id: str, payload: Mapping[str, Any]) -> None:
        """Answer a :class:`CallReceived` (``payload``: the camelCase JSON object)."""
        self._out.append(frames.encode_call_result(unique_id, dict(payload)))

    def send_error(self, unique_id: str, code: str, description: str = "") -> None:
        """Refuse a :class:`CallReceived` with a CallError ``code``."""
        self._out.append(frames.encode_call_error(unique_id, code, description))

    # -- our calls ---------------------------------------------------------------------
    def send_call(self, action: str, payload: dict[str, Any]) -> str:
        """Queue our call and return its message id; its answer arrives as an event.

        Raises :class:`~ocpp_gateway.errors.CallPending` while another call of ours waits
        (the spec's synchronicity rule) and ``ValueError`` for a payload that breaks the
        schema (a bug of ours: the charger must never see it).
        """
        if self.pending is not None:
            raise CallPending(f"{self.pending[1]} {self.pending[0]} still waits for an answer")
        if self.validate:
            try:
                self.dialect.schemas.validate(action, payload)
            except OCPPError as exc:
                raise ValueError(f"gridctl built an invalid {action}: {exc}") from None
        unique_id = str(next(self._ids))
        self._out.append(frames.encode_call(unique_id, action, payload))
        self.pending = (unique_id, action)
        return unique_id

    def abandon(self, unique_id: str) -> None:
        """Stop waiting for the answer to ``unique_id`` (it timed out); a late answer is
        then :class:`Ignored` and the next call may go out."""
        if self.pending is not None and self.pending[0] == unique_id:
            self.pending = None

    def data_to_send(self) -> list[str]:
        """The text frames to send, in order; the adapter must send them all now."""
        out, self._out = self._out, []
        return out
