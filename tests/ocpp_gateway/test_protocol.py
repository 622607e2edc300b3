"""The sans-I/O protocol driven with text, as websockets' tests drive bytes: no sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_gateway.errors import CallPending
from ocpp_gateway.protocol import (
    CallReceived,
    ErrorReceived,
    Ignored,
    OcppProtocol,
    Refused,
    ResultReceived,
)
from ocpp_gateway.v16 import DIALECT as V16
from ocpp_gateway.v201 import DIALECT as V201

HANDLED = frozenset({"Heartbeat", "MeterValues", "BootNotification"})
METER = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": [{"value": "1"}]}]}


def proto(dialect=V16) -> OcppProtocol:
    return OcppProtocol(dialect, HANDLED)


def sent(p: OcppProtocol) -> list[list]:
    return [json.loads(t) for t in p.data_to_send()]


def test_a_valid_call_is_an_event_and_the_answer_goes_out_as_text() -> None:
    p = proto()
    event = p.receive(json.dumps([2, "m1", "MeterValues", METER]))
    assert event == CallReceived("m1", "MeterValues", METER)
    assert p.data_to_send() == []  # nothing is answered until the handler answers
    p.send_result("m1", {})
    assert p.data_to_send() == ['[3,"m1",{}]']
    assert p.data_to_send() == []  # handed out once


@pytest.mark.parametrize(
    ("dialect", "frame", "code"),
    [
        (V16, '[2,"a","Nope",{}]', "NotImplemented"),  # not an OCPP 1.6 action
        (V16, '[2,"a","StartTransaction",{}]', "NotSupported"),  # 1.6, but not handled here
        (V16, '[2,"a","Heartbeat",{"x":1}]', "FormationViolation"),  # additionalProperties
        (V201, '[2,"a","Heartbeat",{"x":1}]', "FormatViolation"),
        (V16, '[2,"a","MeterValues",{"connectorId":1}]', "OccurenceConstraintViolation"),
        (V201, '[2,"a","MeterValues",{"evseId":1}]', "OccurrenceConstraintViolation"),
        (V16, "not json", "FormationViolation"),
        (V16, '[9,"a"]', "ProtocolError"),
    ],
)
def test_bad_calls_are_refused_by_the_protocol_itself(dialect, frame: str, code: str) -> None:
    p = proto(dialect)
    event = p.receive(frame)
    assert isinstance(event, Refused) and event.code == code
    ((kind, unique_id, answered_code, _description, details),) = sent(p)
    assert (kind, answered_code, details) == (4, code, {})
    assert unique_id == ("-1" if frame == "not json" else "a")  # -1: the id was unreadable


def test_our_call_owns_its_id_and_its_answer_is_matched() -> None:
    p = proto()
    uid = p.send_call("ClearChargingProfile", {"id": 7})
    assert sent(p) == [[2, uid, "ClearChargingProfile", {"id": 7}]]
    with pytest.raises(CallPending):
        p.send_call("ClearChargingProfile", {"id": 8})  # one outstanding call at a time
    assert p.receive(f'[3,"{uid}x",{{"status":"Accepted"}}]') == Ignored(f"{uid}x")
    event = p.receive(f'[3,"{uid}",{{"status":"Accepted"}}]')
    assert event == ResultReceived(uid, "ClearChargingProfile", {"status": "Accepted"})
    assert p.pending is None
    assert p.receive(f'[3,"{uid}",{{"status":"Accepted"}}]') == Ignored(uid)  # once only
    second = p.send_call("ClearChargingProfile", {"id": 8})
    assert second != uid


def test_answers_breaking_the_schema_and_callerrors_are_error_events() -> None:
    p = proto(V201)
    uid = p.send_call("ClearChargingProfile", {"chargingProfileId": 7})
    event = p.receive(f'[3,"{uid}",{{"status":"Perhaps"}}]')
    assert isinstance(event, ErrorReceived) and event.code == "PropertyConstraintViolation"
    uid = p.send_call("ClearChargingProfile", {"chargingProfileId": 7})
    event = p.receive(f'[4,"{uid}","NotSupported","no smart charging",{{}}]')
    assert event == ErrorReceived(uid, "ClearChargingProfile", "NotSupported", "no smart charging")


def test_a_timed_out_call_is_abandoned_and_its_late_answer_ignored() -> None:
    p = proto()
    uid = p.send_call("ClearChargingProfile", {"id": 7})
    p.abandon(uid)
    p.send_call("ClearChargingProfile", {"id": 8})  # the next call may go out
    assert p.receive(f'[3,"{uid}",{{"status":"Accepted"}}]') == Ignored(uid)


def test_an_invalid_call_of_ours_never_reaches_the_charger() -> None:
    p = proto()
    with pytest.raises(ValueError, match="invalid SetChargingProfile"):
        p.send_call("SetChargingProfile", {"connectorId": "zero"})
    assert p.data_to_send() == [] and p.pending is None


frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.builds(
        lambda kind, uid, rest: json.dumps([kind, uid, *rest]),
        st.sampled_from([2, 3, 4, 5, "2", None]),
        st.text(max_size=40) | st.integers(),
        st.lists(
            st.sampled_from(["Heartbeat", "MeterValues", "Nope", {}, [], 1, None, METER]),
            max_size=4,
        ),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(frames, max_size=8))
def test_fuzz_every_frame_is_an_event_and_every_refusal_one_callerror(batch: list) -> None:
    p = proto()
    uid = p.send_call("ClearChargingProfile", {"id": 1})
    p.data_to_send()
    for raw in batch:
        event = p.receive(raw)  # never raises
        out = sent(p)
        if isinstance(event, Refused):
            assert len(out) == 1 and out[0][0] == 4 and out[0][2] == event.code
        else:
            assert out == []  # calls wait for their handler; answers are never answered
        if isinstance(event, ResultReceived | ErrorReceived):
            assert event.unique_id == uid and p.pending is None
