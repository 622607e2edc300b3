"""Compiled schemas per version map each violated rule to the spec's CallError code."""

from __future__ import annotations

import pytest
from ocpp.exceptions import OCPPError

from ocpp_gateway.schemas import SchemaMissing
from ocpp_gateway.versions import DIALECTS

SCHEMAS = {d.name: d.schemas for d in DIALECTS.values()}


def validate_request(version: str, action: str, payload: dict) -> None:
    SCHEMAS[version].validate(action, payload)


def compile_validator(version: str, action: str):
    return SCHEMAS[version].compile(action)


GOOD_16 = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": [{"value": "1"}]}]}


def test_valid_payloads_pass() -> None:
    validate_request("1.6", "MeterValues", GOOD_16)
    validate_request("2.0.1", "Heartbeat", {})
    # formats are not checked (the stock validator does not either): no offset is fine
    validate_request(
        "1.6", "StatusNotification",
        {"connectorId": 0, "errorCode": "NoError", "status": "Available",
         "timestamp": "2026-01-01T00:00:00"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("version", "action", "payload", "code"),
    [
        ("1.6", "MeterValues", {**GOOD_16, "connectorId": "one"}, "TypeConstraintViolation"),
        ("1.6", "MeterValues", {"connectorId": 1}, "OccurenceConstraintViolation"),
        ("2.0.1", "MeterValues", {"evseId": 1}, "OccurrenceConstraintViolation"),
        ("1.6", "StatusNotification",
         {"connectorId": 1, "errorCode": "Bogus", "status": "Available"},
         "PropertyConstraintViolation"),
        ("1.6", "Heartbeat", {"extra": 1}, "FormationViolation"),
        ("2.0.1", "Heartbeat", {"extra": 1}, "FormatViolation"),
        ("1.6", "Authorize", {"idTag": "x" * 21}, "PropertyConstraintViolation"),
    ],
)  # fmt: skip
def test_violations_map_to_codes(version: str, action: str, payload: dict, code: str) -> None:
    with pytest.raises(OCPPError) as info:
        validate_request(version, action, payload)
    assert info.value.code == code
    assert action in info.value.description


def test_unknown_action_has_no_schema_and_validators_are_cached() -> None:
    with pytest.raises(SchemaMissing):
        compile_validator("1.6", "NoSuchAction")
    assert compile_validator("1.6", "Heartbeat") is compile_validator("1.6", "Heartbeat")


def test_answers_are_checked_against_the_response_schema() -> None:
    SCHEMAS["1.6"].validate("SetChargingProfile", {"status": "Accepted"}, response=True)
    with pytest.raises(OCPPError) as info:
        SCHEMAS["2.0.1"].validate("SetChargingProfile", {"status": "Maybe"}, response=True)
    assert info.value.code == "PropertyConstraintViolation"


@pytest.mark.parametrize("measurand", ["Power.Active.Import\n", "Power_Active_Import", "Power", ""])
def test_a_string_enum_compiled_as_a_pattern_still_takes_only_its_values(measurand: str) -> None:
    # enums are checked as one anchored regular expression (fast): "." must not match any
    # character, a trailing newline must not slip through, a prefix is not a value
    sampled = [{"value": "1", "measurand": measurand}]
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": sampled}]}
    with pytest.raises(OCPPError) as info:
        validate_request("1.6", "MeterValues", payload)
    assert info.value.code == "PropertyConstraintViolation"
    assert "measurand must be one of" in info.value.description
    sampled[0]["measurand"] = "Power.Active.Import"
    validate_request("1.6", "MeterValues", payload)


def test_2_0_1_enums_behind_refs_are_checked_too() -> None:
    good = {"timestamp": "t", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    validate_request("2.0.1", "StatusNotification", good)
    with pytest.raises(OCPPError) as info:
        validate_request("2.0.1", "StatusNotification", {**good, "connectorStatus": "available"})
    assert info.value.code == "PropertyConstraintViolation"
    assert "connectorStatus must be one of ['Available'," in info.value.description


def test_a_property_named_format_is_kept_when_the_format_keyword_is_dropped() -> None:
    """1.6 sampledValue has a ``format`` property (Raw/SignedData): dropping the
    ``format`` *keyword* once removed it too, and with additionalProperties false every
    MeterValues naming its format was refused as a FormationViolation."""
    sampled = {"value": "1", "format": "SignedData"}
    payload = {**GOOD_16, "meterValue": [{"timestamp": "t", "sampledValue": [sampled]}]}
    compile_validator("1.6", "MeterValues")(payload)  # the compiled validator alone
    validate_request("1.6", "MeterValues", payload)
    with pytest.raises(OCPPError) as err:
        bad = {**sampled, "format": "Hex"}
        validate_request(
            "1.6", "MeterValues",
            {**GOOD_16, "meterValue": [{"timestamp": "t", "sampledValue": [bad]}]},
        )  # fmt: skip
    assert err.value.code == "PropertyConstraintViolation"
