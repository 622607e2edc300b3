"""Every topic contract: valid records round-trip, bad ones raise a ContractError that names
the field and the reason. Fields are found by inspecting the models, so a new contract or
field is covered without editing this file (only VALID needs a sample per model)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from pipeline import contracts, topics
from pipeline.contracts import ContractError, decode, encode

T0 = "2026-03-01T12:00:00+00:00"
T1 = "2026-03-01T13:00:00+01:00"
T2 = "2026-03-01T14:00:00Z"

#: One valid record per model, with every field set where that is allowed.
VALID: dict[type[msgspec.Struct], dict[str, Any]] = {
    contracts.MeterValue: {
        "station_id": "st-1",
        "connector_id": 1,
        "session_id": "tx-9",
        "connector_type": "CCS2",
        "power_kw": 7.4,
        "current_a": 32.0,
        "voltage_v": 230.0,
        "energy_kwh": 12.5,
        "soc_percent": 55.0,
        "event_ts": T0,
        "received_ts": T0,
        "ocpp_version": "1.6",
    },
    contracts.DemandResponseSignal: {
        "signal_id": "dr-1",
        "modification": 2,
        "zone_id": "zone-a",
        "signal_type": "CURTAIL",
        "target_reduction_kw": 50.0,
        "start_ts": T0,
        "end_ts": T2,
        "priority": 1,
        "source": "openadr2",
        "received_ts": T0,
    },
    contracts.StationZone: {
        "station_id": "st-1",
        "zone_id": "zone-a",
        "max_station_kw": 22.0,
        "contract_max_kw": 11.0,
        "min_active_kw": 1.4,
        "charging_rate_unit": "A",
        "phases": 1,
        "voltage_v": 230.0,
    },
    contracts.StationCredential: {
        "station_id": "st-1",
        "password_hash": "scrypt$00ff$abcd",
        "security_profile": 2,
    },
    contracts.SetChargingProfileCommand: {
        "station_id": "st-1",
        "target_power_kw": 3.5,
        "station_shed_kw": 7.5,
        "signal_id": "dr-1",
        "priority": 1,
        "dr_end_ts": T2,
        "command_ts": T0,
    },
    contracts.CommandResult: {
        "station_id": "st-1",
        "signal_id": "dr-1",
        "action": "SetChargingProfile",
        "status": "Accepted",
        "sent_ts": T0,
        "result_ts": T1,
        "latency_ms": 42.0,
    },
    contracts.StationSessions: {
        "station_id": "st-1",
        "open": [{"connector_id": 1, "session_id": "tx-1"}],
        "closed": ["tx-0"],
        "ts": T0,
    },
    contracts.StationStatus: {
        "station_id": "st-1",
        "event": "StatusNotification",
        "connector_id": 1,
        "status": "Charging",
        "error_code": "NoError",
        "ocpp_version": "2.0.1",
        "ts": T0,
    },
    contracts.Alert: {
        "alert_type": "zone_over_cap",
        "detected_at": T0,
        "zone_id": "zone-a",
        "station_id": "st-1",
        "signal_id": "dr-1",
        "observed_kw": 120.5,
        "limit_kw": 100.0,
        "ack_rate": 0.85,
        "window_start": T0,
        "window_end": T1,
    },
    contracts.DrAlertEpisode: {
        "alert_id": "signal_infeasible|dr-1|*",
        "alert_type": "signal_infeasible",
        "detected_at": T0,
        "zone_id": "zone-a",
        "station_id": None,
        "signal_id": "dr-1",
        "observed_kw": 12.6,
        "limit_kw": 10.0,
        "ack_rate": None,
        "window_start": T0,
        "window_end": T1,
    },
    contracts.DrBaseline: {
        "baseline_id": "ev-1@zone-a|st-1",
        "event_key": "ev-1",
        "zone_id": "zone-a",
        "station_id": "st-1",
        "baseline_kw": 12.5,
        "basis": "pre_start",
        "lent_from": None,
        "effective_ts": T0,
    },
    contracts.DrSignalState: {
        "signal_id": "dr-1",
        "zone_id": "zone-a",
        "state": "infeasible",
        "enforced_by": "dr-1",
        "baseline_basis": "pre_start",
        "baseline_kw": 40.0,
        "cap_kw": 4.0,
        "shortfall_kw": 0.2,
        "uncontrollable_stations": 1,
    },
    contracts.RejectedRecord: {
        "topic": "ocpp.meter_values",
        "partition": 0,
        "offset": 41,
        "key": "st-1",
        "value": '{"station_id": "st-1"}',
        "table": "meter_values",
        "reason": "contract",
        "detail": "ocpp.meter_values: $: required field is missing",
        "rejected_ts": T0,
    },
}

CASES = [pytest.param(topic, model, id=topic) for topic, model in contracts.MODELS.items()]


def fields(model: type[msgspec.Struct]) -> list[msgspec.inspect.Field]:
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return list(info.fields)


def inner(t: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """The type under an ``X | None``."""
    if isinstance(t, msgspec.inspect.UnionType):
        others = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
        if len(others) == 1:
            return others[0]
    return t


def fields_of(model: type[msgspec.Struct], *kinds: type) -> list[str]:
    return [f.name for f in fields(model) if isinstance(inner(f.type), kinds)]


def datetime_fields(model: type[msgspec.Struct]) -> list[str]:
    return fields_of(model, msgspec.inspect.DateTimeType)


def raises(topic: str, model: type[msgspec.Struct], doc: dict[str, Any] | bytes) -> ContractError:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(ContractError) as info:
        decode(model, data, topic=topic)
    return info.value


def test_every_model_has_a_sample() -> None:
    assert set(contracts.MODELS.values()) <= set(VALID)


@pytest.mark.parametrize(("topic", "model"), CASES)
def test_valid_record_round_trips(topic: str, model: type[msgspec.Struct]) -> None:
    record = decode(model, json.dumps(VALID[model]), topic=topic)
    again = decode(model, encode(record), topic=topic)
    assert again == record
    assert contracts.decode_topic(topic, encode(record)) == record
    # Timestamps keep their instant and come back with an offset.
    for name in datetime_fields(model):
        value = getattr(again, name)
        if value is not None:
            assert value.utcoffset() is not None


@pytest.mark.parametrize(("topic", "model"), CASES)
def test_wrong_type_names_field(topic: str, model: type[msgspec.Struct]) -> None:
    for f in fields(model):
        if not f.required:
            continue
        err = raises(topic, model, {**VALID[model], f.name: [1, 2]})
        assert err.topic == topic
        assert err.field == f"$.{f.name}"
        assert "got array" in err.reason
        assert str(err) == f"{topic}: $.{f.name}: {err.reason}"


@pytest.mark.parametrize(("topic", "model"), CASES)
def test_missing_required_field_names_field(topic: str, model: type[msgspec.Struct]) -> None:
    required = [f.name for f in fields(model) if f.required]
    assert required
    for name in required:
        doc = {k: v for k, v in VALID[model].items() if k != name}
        err = raises(topic, model, doc)
        assert str(err) == f"{topic}: $.{name}: required field is missing"


@pytest.mark.parametrize(("topic", "model"), CASES)
def test_naive_timestamp_is_refused(topic: str, model: type[msgspec.Struct]) -> None:
    names = datetime_fields(model)
    if not names:
        pytest.skip(f"{model.__name__} has no timestamp")
    for name in names:
        err = raises(topic, model, {**VALID[model], name: "2026-03-01T12:00:00"})
        assert err.field == f"$.{name}"
        assert "timezone" in err.reason


@pytest.mark.parametrize(("topic", "model"), CASES)
@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe"])
def test_non_json_is_refused(topic: str, model: type[msgspec.Struct], data: bytes) -> None:
    err = raises(topic, model, data)
    assert err.field == "$"
    assert err.reason.startswith("not valid JSON")


@pytest.mark.parametrize(("topic", "model"), CASES)
def test_json_that_is_not_an_object_is_refused(topic: str, model: type[msgspec.Struct]) -> None:
    err = raises(topic, model, b"[1, 2]")
    assert str(err) == f"{topic}: $: Expected object, got array"


@pytest.mark.parametrize(("topic", "model"), CASES)
def test_numeric_strings_are_accepted(topic: str, model: type[msgspec.Struct]) -> None:
    numeric = fields_of(model, msgspec.inspect.FloatType, msgspec.inspect.IntType)
    names = [n for n in numeric if VALID[model].get(n) is not None]
    if not names:
        pytest.skip(f"{model.__name__} has no numeric field set in its sample")
    doc = {**VALID[model], **{n: str(VALID[model][n]) for n in names}}
    record = decode(model, json.dumps(doc), topic=topic)
    for n in names:
        assert getattr(record, n) == pytest.approx(VALID[model][n])
        assert type(getattr(record, n)) is type(VALID[model][n])


def test_numeric_string_that_is_not_a_number_is_refused() -> None:
    doc = {**VALID[contracts.MeterValue], "power_kw": "seven"}
    err = raises(topics.METER_VALUES, contracts.MeterValue, doc)
    assert err.field == "$.power_kw"
    assert "got str" in err.reason


def test_missing_measurand_stays_null() -> None:
    doc = {k: v for k, v in VALID[contracts.MeterValue].items() if k != "power_kw"}
    assert decode(contracts.MeterValue, json.dumps(doc)).power_kw is None


def test_unknown_fields_are_ignored() -> None:
    doc = {**VALID[contracts.StationZone], "added_later": 1}
    assert decode(contracts.StationZone, json.dumps(doc)).zone_id == "zone-a"


# -- DemandResponseSignal rules ----------------------------------------------------------
DR = VALID[contracts.DemandResponseSignal]
AMOUNTS = ("target_reduction_kw", "target_reduction_pct", "zone_limit_kw")


def dr(**changes: Any) -> dict[str, Any]:
    doc = {k: v for k, v in DR.items() if k not in AMOUNTS}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def dr_error(doc: dict[str, Any]) -> ContractError:
    return raises(topics.DEMAND_RESPONSE, contracts.DemandResponseSignal, doc)


@pytest.mark.parametrize("signal_type", ["CURTAIL", "SHED"])
@pytest.mark.parametrize("amount", AMOUNTS)
def test_dr_with_exactly_one_amount_is_valid(signal_type: str, amount: str) -> None:
    doc = dr(signal_type=signal_type, **{amount: 20.0})
    signal = decode(contracts.DemandResponseSignal, json.dumps(doc))
    assert getattr(signal, amount) == 20.0


@pytest.mark.parametrize("signal_type", ["CURTAIL", "SHED"])
def test_dr_without_amount_is_refused(signal_type: str) -> None:
    err = dr_error(dr(signal_type=signal_type))
    assert err.field == "$.signal_type"
    assert err.reason == (
        f"{signal_type} needs exactly one of target_reduction_kw, target_reduction_pct, "
        "zone_limit_kw, got 0"
    )


def test_dr_with_two_amounts_is_refused() -> None:
    err = dr_error(dr(target_reduction_kw=5.0, zone_limit_kw=100.0))
    assert err.field == "$.signal_type"
    assert err.reason.endswith("got 2")


def test_dr_restore_carries_no_amount() -> None:
    signal = decode(contracts.DemandResponseSignal, json.dumps(dr(signal_type="RESTORE")))
    assert signal.signal_type == "RESTORE"
    err = dr_error(dr(signal_type="RESTORE", target_reduction_pct=10.0))
    assert str(err) == (
        "grid.demand_response: $.target_reduction_pct: "
        "RESTORE carries no amount, got target_reduction_pct"
    )


@pytest.mark.parametrize("end_ts", [T0, "2026-03-01T11:00:00Z"])
def test_dr_end_must_be_after_start(end_ts: str) -> None:
    err = dr_error(dr(target_reduction_kw=5.0, end_ts=end_ts))
    assert str(err) == "grid.demand_response: $.end_ts: end_ts must be after start_ts"


def test_dr_pct_above_100_is_refused() -> None:
    err = dr_error(dr(target_reduction_pct=120.0))
    assert err.field == "$.target_reduction_pct"
    assert "<= 100" in err.reason


def test_dr_priority_out_of_range_is_refused() -> None:
    err = dr_error(dr(target_reduction_kw=5.0, priority=4))
    assert err.field == "$.priority"
    assert "<= 3" in err.reason


# -- bounds: every field has the range of its column (issue 11) ---------------------------


def _meter(**changes: Any) -> bytes:
    return json.dumps({**VALID[contracts.MeterValue], **changes}).encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connector_id", 2**40),  # once made the engine's batch insert fail
        ("connector_id", 2**31),  # int32 + 1
        ("connector_id", -1),
        ("power_kw", -0.5),  # import power is never negative
        ("power_kw", "NaN"),
        ("power_kw", "Infinity"),
        ("power_kw", "-Infinity"),
        ("power_kw", 1e12),
        ("current_a", -1.0),
        ("voltage_v", "nan"),
        ("energy_kwh", -3.0),
        ("station_id", "x" * 49),  # OCPP's identity is at most 48 characters
        ("station_id", "CP:1"),
        ("station_id", "CP/1"),
        ("station_id", "CP\n2026-01-01 forged log line"),
        ("station_id", "CP\u0000"),
        ("session_id", "t" * 129),
        ("session_id", "tx\r\n"),
    ],
)
def test_meter_value_out_of_range_raises_the_contract_error(field: str, value: Any) -> None:
    with pytest.raises(ContractError) as err:
        decode(contracts.MeterValue, _meter(**{field: value}), topic=topics.METER_VALUES)
    assert err.value.field == f"$.{field}"
    assert err.value.topic == topics.METER_VALUES


def test_meter_value_bounds_keep_real_values() -> None:
    record = decode(
        contracts.MeterValue,
        _meter(connector_id=2**31 - 1, station_id="x" * 48, power_kw=0.0, charger_ts=T1),
    )
    assert record.connector_id == 2_147_483_647
    assert record.charger_ts is not None and record.charger_ts.utcoffset().seconds == 3600


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (contracts.StationZone, "max_station_kw", "Infinity"),
        (contracts.StationZone, "station_id", "s:1"),
        (contracts.SetChargingProfileCommand, "station_shed_kw", "NaN"),
        (contracts.StationStatus, "connector_id", 2**40),
        (contracts.StationStatus, "connector_id", -1),
        (contracts.StationStatus, "error_code", "x\u0000"),
        (contracts.DemandResponseSignal, "modification", 2**63),
        (contracts.Alert, "ack_rate", 1.5),
    ],
)
def test_other_contracts_bound_their_fields(
    model: type[msgspec.Struct], field: str, value: Any
) -> None:
    data = json.dumps({**VALID[model], field: value}).encode()
    with pytest.raises(ContractError) as err:
        decode(model, data)
    assert err.value.field == f"$.{field}"
