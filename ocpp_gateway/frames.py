"""OCPP-J frames: text in, frame objects or a :class:`FrameError` out (no I/O).

A frame is a JSON array: ``[2, id, action, payload]`` (Call), ``[3, id, payload]``
(CallResult) or ``[4, id, code, description, details]`` (CallError). Decoding never raises
anything but :class:`FrameError`, whose ``code`` is the CallError code to answer with, so
the protocol can answer and keep reading instead of dying on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ocpp_gateway.errors import FrameError

__all__ = [
    "Call",
    "CallError",
    "CallResult",
    "decode",
    "encode_call",
    "encode_call_error",
    "encode_call_result",
]

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_MAX_ID = 36  # OCPP 2.0.1 messageId maxLength; 1.6 says 36 too


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


def decode(raw: str | bytes, format_violation: str) -> Call | CallResult | CallError:
    """Parse one frame, or raise :class:`FrameError` naming the CallError code.

    ``format_violation`` is the version's spelling of that code (1.6: FormationViolation).
    """
    try:
        msg = _DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameError(format_violation, f"not valid JSON: {exc}") from None
    except RecursionError:
        # msgspec recurses per nesting level: "[" * 50_000 must not kill the connection.
        raise FrameError(format_violation, "JSON nested too deeply") from None
    if not isinstance(msg, list) or not msg:
        raise FrameError("ProtocolError", "a frame must be a non-empty JSON array")
    kind = msg[0]
    unique_id = msg[1] if len(msg) > 1 else None
    if not isinstance(unique_id, str) or not unique_id or len(unique_id) > _MAX_ID:
        raise FrameError("ProtocolError", "the message id must be a string of 1..36 chars")
    if kind == 2:
        if len(msg) != 4:
            raise FrameError("ProtocolError", "a Call has 4 elements", unique_id)
        action, payload = msg[2], msg[3]
        if not isinstance(action, str) or not action:
            raise FrameError("ProtocolError", "the action must be a string", unique_id)
        if not isinstance(payload, dict):
            raise FrameError(format_violation, "the payload must be a JSON object", unique_id)
        return Call(unique_id, action, payload)
    if kind == 3:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise FrameError("ProtocolError", "a CallResult is [3, id, {payload}]", unique_id)
        return CallResult(unique_id, msg[2])
    if kind == 4:
        if len(msg) != 5 or not isinstance(msg[2], str):
            raise FrameError("ProtocolError", "a CallError has 5 elements", unique_id)
        details = msg[4] if isinstance(msg[4], dict) else {}
        return CallError(unique_id, msg[2], str(msg[3]), details)
    raise FrameError("ProtocolError", f"unknown MessageTypeId {kind!r}", unique_id)


def encode_call(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    """``[2, id, action, payload]`` as text, serialised once."""
    return _ENCODER.encode([2, unique_id, action, payload]).decode()


def encode_call_result(unique_id: str, payload: dict[str, Any]) -> str:
    """``[3, id, payload]`` as text (OCPP-J frames are text frames)."""
    return _ENCODER.encode([3, unique_id, payload]).decode()


def encode_call_error(
    unique_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> str:
    """``[4, id, code, description, details]`` as text; description capped at 255 chars."""
    return _ENCODER.encode([4, unique_id, code, description[:255], details or {}]).decode()
