"""Key conversion for handlers: camelCase in, snake_case out, the charger's payload intact."""

from __future__ import annotations

import copy

from ocpp_gateway.routing import to_snake


def test_nested_keys_are_converted_and_the_input_is_left_as_it_was() -> None:
    payload = {
        "connectorId": 1,
        "transactionId": 17,
        "meterValue": [
            {"timestamp": "t", "sampledValue": [{"value": "1", "measurand": "SoC"}]},
            {"timestamp": "u", "sampledValue": [{"value": "2", "unitOfMeasure": {"unit": "W"}}]},
        ],
    }
    before = copy.deepcopy(payload)
    out = to_snake(payload)
    assert out == {
        "connector_id": 1,
        "transaction_id": 17,
        "meter_value": [
            {"timestamp": "t", "sampled_value": [{"value": "1", "measurand": "SoC"}]},
            {"timestamp": "u", "sampled_value": [{"value": "2", "unit_of_measure": {"unit": "W"}}]},
        ],
    }
    assert payload == before  # converted into new dicts, never in place
    # the same key set again (memoised shape) converts the same way
    assert to_snake({"connectorId": 2, "transactionId": 3, "meterValue": []}) == {
        "connector_id": 2, "transaction_id": 3, "meter_value": [],
    }  # fmt: skip


def test_a_dict_already_in_snake_case_is_not_copied_unless_something_nested_changes() -> None:
    flat = {"value": "1", "measurand": "SoC", "phase": "L1"}
    assert to_snake(flat) is flat
    nested = {"value": "1", "inner": {"camelKey": 1}}
    out = to_snake(nested)
    assert out == {"value": "1", "inner": {"camel_key": 1}}
    assert nested == {"value": "1", "inner": {"camelKey": 1}}
