"""Frame decoding as bytes in, messages or CallError codes out (no sockets)."""

from __future__ import annotations

import pytest

from ocpp_gateway import frames
from ocpp_gateway.errors import FrameError
from ocpp_gateway.frames import Call, CallError, CallResult


def test_call_result_and_error_decode() -> None:
    call = frames.decode('[2,"a1","Heartbeat",{}]', "FormationViolation")
    assert isinstance(call, Call) and (call.unique_id, call.action, call.payload) == (
        "a1",
        "Heartbeat",
        {},
    )
    result = frames.decode(b'[3,"a2",{"status":"Accepted"}]', "FormatViolation")
    assert isinstance(result, CallResult) and result.payload == {"status": "Accepted"}
    error = frames.decode('[4,"a3","NotImplemented","nope",{}]', "FormationViolation")
    assert isinstance(error, CallError) and error.code == "NotImplemented"


@pytest.mark.parametrize(
    ("raw", "version", "code", "unique_id"),
    [
        ("not json", "1.6", "FormationViolation", "-1"),
        ("not json", "2.0.1", "FormatViolation", "-1"),
        (b"\xff\xfe", "1.6", "FormationViolation", "-1"),
        ('{"a": 1}', "1.6", "ProtocolError", "-1"),
        ("[]", "1.6", "ProtocolError", "-1"),
        ("[2]", "1.6", "ProtocolError", "-1"),
        ('[2, 17, "Heartbeat", {}]', "1.6", "ProtocolError", "-1"),
        ('[2, "x", "Heartbeat"]', "1.6", "ProtocolError", "x"),
        ('[2, "x", 5, {}]', "1.6", "ProtocolError", "x"),
        ('[2, "x", "Heartbeat", []]', "2.0.1", "FormatViolation", "x"),
        ('[7, "x", "Heartbeat", {}]', "1.6", "ProtocolError", "x"),
        ('[3, "x"]', "1.6", "ProtocolError", "x"),
        ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "1.6", "ProtocolError", "-1"),
    ],
)
def test_bad_frames_name_their_callerror(
    raw: str | bytes, version: str, code: str, unique_id: str
) -> None:
    with pytest.raises(FrameError) as info:
        frames.decode(raw, "FormationViolation" if version == "1.6" else "FormatViolation")
    assert (info.value.code, info.value.unique_id) == (code, unique_id)


def test_encoders_produce_ocpp_j() -> None:
    assert frames.encode_call_result("u", {"a": 1}) == '[3,"u",{"a":1}]'
    assert frames.encode_call("7", "Reset", {"type": "Soft"}) == '[2,"7","Reset",{"type":"Soft"}]'
    text = frames.encode_call_error("u", "InternalError", "x" * 300)
    decoded = frames.decode(text, "FormationViolation")
    assert isinstance(decoded, CallError)
    assert decoded.code == "InternalError" and len(decoded.description) == 255


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deeply_nested_frame_is_a_format_violation_not_a_crash(depth: int) -> None:
    # Found by tests/drills/test_fuzz_load.py: msgspec raised RecursionError, which
    # escaped decode() and ended the connection's handler with a traceback.
    with pytest.raises(FrameError) as info:
        frames.decode("[2," + "[" * depth + "]" * depth + "]", "FormationViolation")
    assert info.value.code == "FormationViolation"
