"""The msgspec pre-check (ocpp_gateway/typed.py) against the compiled validator.

Differential: for every action schema of every version that has types, payloads built
from the schema itself -- valid ones, and hostile ones made from them (a wrong type, null,
a missing required key, an unknown key, an enum or length violation, an empty array,
non-BMP text at the length limit) -- must be accepted by the types only when the compiled
validator accepts them, and every valid one must take the fast path (else the types
would be dead weight). ``Schemas.validate`` must then refuse exactly what the compiled
validator refuses, with the same CallError code and text.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import fastjsonschema
import msgspec
import ocpp
import pytest
from ocpp.exceptions import OCPPError

from ocpp_gateway.schemas import Schemas
from ocpp_gateway.versions import DIALECTS

_ROOT = Path(ocpp.__file__).parent
_WORDS = ["", "x", "Accepted", "L1", "2026-01-01T00:00:00Z", "\U0001f600", "1.5"]


def actions(schemas: Schemas) -> list[tuple[str, bool]]:
    """Every (action, response) whose schema file the library ships."""
    out = []
    suffixes = [n.format(action="") for n in schemas.names]
    for path in sorted((_ROOT / schemas.directory / "schemas").glob("*.json")):
        stem = path.stem
        if suffixes[1] and stem.endswith(suffixes[1]):
            out.append((stem[: -len(suffixes[1])], True))
        elif stem.endswith(suffixes[0]) or not suffixes[0]:
            action = stem[: -len(suffixes[0])] if suffixes[0] else stem
            if action and not action.endswith("Response"):
                out.append((action, False))
    return out


CASES = [
    (version, action, response)
    for version, dialect in ((d.name, d) for d in DIALECTS.values())
    for action, response in actions(dialect.schemas)
]


def schemas_of(version: str) -> Schemas:
    return next(d.schemas for d in DIALECTS.values() if d.name == version)


def raw_schema(schemas: Schemas, action: str, response: bool) -> dict[str, Any]:
    return schemas._load(action, response)


def resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    return node


def valid(node: dict[str, Any], defs: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value the schema accepts (optional keys present at random)."""
    node = resolve(node, defs)
    kind = node.get("type")
    if kind == "object":
        required = set(node.get("required", ()))
        return {
            key: valid(sub, defs, rng, depth + 1)
            for key, sub in node.get("properties", {}).items()
            if key in required or (depth < 6 and rng.random() < 0.6)
        }
    if kind == "array":
        n = max(node.get("minItems", 0), rng.randint(0, 2))
        n = min(n, node.get("maxItems", n))
        return [valid(node["items"], defs, rng, depth + 1) for _ in range(n)]
    if kind == "string":
        if "enum" in node:
            return rng.choice(node["enum"])
        limit = node.get("maxLength", 40)
        text = rng.choice(_WORDS)
        if rng.random() < 0.2:
            text = rng.choice(["\U0001f600", "é", "a"]) * limit  # at the limit, in code points
        return text[:limit]
    if kind == "integer":
        low = node.get("minimum", -(2**63))
        return rng.choice([v for v in (0, 1, -7, 2**31 - 1, 2**40) if v >= low])
    if kind == "number":
        low = node.get("minimum", -1e308)
        if "multipleOf" in node:  # what the profiles build: floor(x * 10) / 10
            pool = [0, 0.1, 7.5, 22.0, 3.7, 11.1, 4.2, -2, 1.0, 2.0**53, 7]
        else:
            pool = [0, 1.5, -2, 1e300, 7]
        return rng.choice([v for v in pool if v >= low])
    if kind == "boolean":
        return rng.choice([True, False])
    raise AssertionError(f"no generator for {node}")


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def node_at(schema: dict[str, Any], defs: dict[str, Any], path: tuple) -> dict[str, Any]:
    node = resolve(schema, defs)
    for step in path:
        node = resolve(node["items"] if isinstance(step, int) else node["properties"][step], defs)
    return node


def hostile(
    payload: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any], rng: random.Random
) -> Any:
    """One mutation of a valid payload, aimed where the types and the validator could
    disagree."""
    out = copy.deepcopy(payload)
    path = rng.choice(paths(out))
    node = node_at(schema, defs, path)
    parent: Any = out
    for step in path[:-1]:
        parent = parent[step]

    def put(value: Any) -> Any:
        if not path:
            return value
        parent[path[-1]] = value
        return out

    choice = rng.randrange(9)
    if choice == 0:  # a value of another JSON type
        return put(rng.choice([None, True, False, 1, 1.0, 2.5, "1", [], {}, 2**70, -0.0]))
    if choice == 1 and isinstance(parent, dict) and path:  # a key removed
        del parent[path[-1]]
        return out
    if choice == 2 and node.get("type") == "object":  # an unknown key
        target = out if not path else parent[path[-1]]
        target[rng.choice(["extra", "Value", "connectorid", "f0", ""])] = 1
        return out
    if choice == 3 and "enum" in node:
        value = rng.choice(node["enum"])
        return put(rng.choice([value.lower(), value + " ", value + "\n", value[:-1], ""]))
    if choice == 4 and "maxLength" in node:
        return put(rng.choice(["a", "\U0001f600"]) * (node["maxLength"] + 1))
    if choice == 5 and node.get("type") == "array":
        return put([])
    if choice == 6 and node.get("type") == "array" and isinstance(parent, dict | list):
        items = out if not path else parent[path[-1]]
        items.append(rng.choice([None, 1, "x", {}]))
        return out
    if choice == 7 and node.get("type") == "integer":
        return put(rng.choice([1.0, 1.5, True, "7"]))
    if choice == 8 and node.get("type") == "number":
        return put(rng.choice([True, "1.5", None, *NUMBERS]))
    if choice == 8 and node.get("type") == "integer" and "minimum" in node:
        return put(rng.choice([node["minimum"] - 1, -1, -(2**63), node["minimum"]]))
    return put(rng.choice([None, "", 0, [None], {"a": 1}]))


#: numbers where a typed multipleOf / minimum could differ from the validator's: floats
#: a float division calls whole but the decimal one does not, beyond 2**53 (where an int
#: and its float differ), huge, tiny, negative zero, just below zero
NUMBERS = [0.30000000000000004, 7.55, 7.5, 0.1 * 3, 2.0**53 + 2, 2**53 + 1, 2**60, 1e300,
           1e-7, -0.0, -1e-300, -0.1, 1e308, 123456789.1, 0.7000000000000001]  # fmt: skip


def accepts_typed(typed: Any, payload: Any) -> bool:
    try:
        msgspec.convert(payload, typed, strict=True)
    except msgspec.ValidationError:
        return False
    return True


def accepts_validator(validator: Any, payload: Any) -> bool:
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


HOT = {
    ("1.6", "MeterValues"), ("1.6", "StatusNotification"), ("1.6", "Heartbeat"),
    ("2.0.1", "TransactionEvent"), ("2.0.1", "MeterValues"),
    # our own call, validated before every send (protocol.send_call)
    ("1.6", "SetChargingProfile"), ("2.0.1", "SetChargingProfile"),
}  # fmt: skip


def test_the_hot_actions_have_types() -> None:
    for version, action in HOT:
        assert schemas_of(version).typed(action) is not None, (version, action)


@pytest.mark.parametrize(("version", "action", "response"), CASES)
def test_the_types_never_accept_what_the_schema_refuses(
    version: str, action: str, response: bool
) -> None:
    schemas = schemas_of(version)
    typed = schemas.typed(action, response)
    if typed is None:
        pytest.skip("no types for this schema: the compiled validator decides alone")
    schema = raw_schema(schemas, action, response)
    defs = schema.get("definitions", {})
    validator = schemas.compile(action, response)
    rng = random.Random(f"{version}/{action}/{response}")
    refused = 0
    for _ in range(60):
        good = valid(schema, defs, rng)
        assert accepts_validator(validator, good), good  # the generator itself is right
        assert accepts_typed(typed, good), good  # valid payloads take the fast path
        for _ in range(4):
            bad = hostile(good, schema, defs, rng)
            by_validator = accepts_validator(validator, bad)
            if accepts_typed(typed, bad):
                assert by_validator, f"types accepted what the schema refuses: {bad!r}"
            refused += not by_validator
    assert refused > 0  # the mutations did reach refusals


def error_of(schemas: Schemas, action: str, payload: Any, response: bool) -> tuple | None:
    try:
        schemas.validate(action, payload, response)
    except OCPPError as exc:
        return (exc.code, exc.description)
    return None


@pytest.mark.parametrize(("version", "action"), sorted(HOT))
def test_refusals_read_as_without_the_types(version: str, action: str) -> None:
    """``validate`` with types == ``validate`` of a Schemas that has none (same code and
    description, or both accept), on valid and hostile payloads."""
    with_types = schemas_of(version)
    without = Schemas(
        with_types.directory, with_types.names, with_types.occurrence, with_types.formation
    )
    without._typed = {(action, False): None}  # the compiled validator alone
    schema = raw_schema(with_types, action, False)
    defs = schema.get("definitions", {})
    rng = random.Random(f"codes/{version}/{action}")
    codes = set()
    for _ in range(200):
        payload = valid(schema, defs, rng)
        if rng.random() < 0.8:
            payload = hostile(payload, schema, defs, rng)
        expected = error_of(without, action, payload, False)
        assert error_of(with_types, action, payload, False) == expected, payload
        codes.add(expected and expected[0])
    assert None in codes and len(codes) > 2  # both accepted and several kinds of refusal


def test_null_for_an_optional_field_and_a_bool_for_an_integer_are_refused() -> None:
    """Hand-picked: the cases where a typed model commonly differs from the schema."""
    schemas = schemas_of("1.6")
    good = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": [{"value": "1"}]}]}
    assert error_of(schemas, "MeterValues", good, False) is None
    assert error_of(schemas, "MeterValues", {**good, "transactionId": None}, False)[0] == (
        "TypeConstraintViolation"
    )
    assert error_of(schemas, "MeterValues", {**good, "connectorId": True}, False)[0] == (
        "TypeConstraintViolation"
    )
    sampled = {"value": "1", "unit": "kWh\n"}  # \Z, not $: a trailing newline is no enum value
    bad = {**good, "meterValue": [{"timestamp": "t", "sampledValue": [sampled]}]}
    assert error_of(schemas, "MeterValues", bad, False)[0] == "PropertyConstraintViolation"
    assert error_of(schemas, "MeterValues", {**good, "extra": 1}, False)[0] == (
        "FormationViolation"
    )


def test_a_schema_keyword_the_types_cannot_say_gives_no_types() -> None:
    from ocpp_gateway.typed import struct_of

    assert struct_of({"type": "object", "properties": {"a": {"type": "integer"}}}, "A")
    for node in (
        {"type": "integer", "minimum": 0.5},
        {"type": "integer", "maximum": 9},
        {"type": "integer", "multipleOf": 0.1},
        {"type": "number", "multipleOf": 1},
        {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        {"type": "array", "items": {"type": "number", "multipleOf": 0.1}},
        {"type": "string", "pattern": "^a$"},
        {"type": ["string", "null"]},
        {"anyOf": [{"type": "string"}]},
    ):
        assert struct_of({"type": "object", "properties": {"a": node}}, "A") is None, node
    assert struct_of({"type": "object", "additionalProperties": {"type": "string"}}, "A") is None


def test_the_schema_files_parse(tmp_path: Path) -> None:
    # every case above read a real file; this guards the enumeration itself
    assert len(CASES) > 100
    assert json.dumps(raw_schema(schemas_of("2.0.1"), "TransactionEvent", False))


def _limit_payloads(version: str, limit: Any) -> list[dict[str, Any]]:
    """A SetChargingProfile as the dialect builds it, with ``limit`` as the period's limit
    and as ``minChargingRate`` (both ``multipleOf 0.1`` in 1.6)."""
    from datetime import UTC, datetime, timedelta

    from ocpp_gateway.profiles import UNKNOWN
    from pipeline.contracts import SetChargingProfileCommand

    dialect = next(d for d in DIALECTS.values() if d.name == version)
    now = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    cmd = SetChargingProfileCommand(
        station_id="CP1", target_power_kw=7.4, signal_id="s", dr_end_ts=now + timedelta(hours=1),
        command_ts=now,
    )  # fmt: skip
    out = []
    for where in ("limit", "minChargingRate"):
        payload = dialect.set_profile(cmd, None, dialect.purposes[0], now, 60, UNKNOWN)
        profile = payload["csChargingProfiles" if version == "1.6" else "chargingProfile"]
        sched = profile["chargingSchedule"]
        sched = sched[0] if isinstance(sched, list) else sched
        if where == "limit":
            sched["chargingSchedulePeriod"][0]["limit"] = limit
        else:
            sched["minChargingRate"] = limit
        out.append(payload)
    return out


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_set_charging_profile_takes_the_fast_path_and_refuses_as_the_schema(version: str) -> None:
    """The limits the profiles build (floor(x * 10) / 10) are accepted by the types, and
    no limit the compiled validator refuses is: hand-picked edges and 20,000 others."""
    schemas = schemas_of(version)
    typed = schemas.typed("SetChargingProfile")
    assert typed is not None
    validator = schemas.compile("SetChargingProfile")
    rng = random.Random(f"limits/{version}")
    built = [math.floor(rng.uniform(0, 50_000) * 10 + 1e-9) / 10 for _ in range(5_000)]
    for value in built:
        for payload in _limit_payloads(version, value):
            assert accepts_typed(typed, payload), value  # the fast path, every time
            assert accepts_validator(validator, payload), value
    others: list[Any] = [*NUMBERS, 2**53, -(2**53), 10**20, True, None, "7.5"]
    others += [rng.uniform(-100, 100) for _ in range(5_000)]
    others += [round(rng.uniform(0, 100), rng.randint(1, 3)) for _ in range(5_000)]
    others += [rng.randint(-10, 10) / 10 for _ in range(1_000)]
    refused = 0
    for value in others:
        for payload in _limit_payloads(version, value):
            by_validator = accepts_validator(validator, payload)
            if accepts_typed(typed, payload):
                assert by_validator, f"types accepted what the schema refuses: {value!r}"
            refused += not by_validator
    # 1.6: multipleOf 0.1 refuses most random floats; 2.0.1 sets no step: wrong types only
    assert refused > (1_000 if version == "1.6" else 5)


def test_multiple_of_by_hand() -> None:
    """Hand-checked against the schema's rule (1.6 limit: multipleOf 0.1, decimal test):
    7.5 = 75 x 0.1 is taken by the types (msgspec's own fmod test would refuse it);
    7.55 and 0.30000000000000004 (0.1 * 3 in floats) are no multiples, and both the types
    and the schema refuse them; an integer is a multiple; a negative multiple is one too
    (1.6 sets no minimum)."""
    schemas = schemas_of("1.6")
    typed = schemas.typed("SetChargingProfile")
    validator = schemas.compile("SetChargingProfile")
    cases = {
        7.5: True,
        7.55: False,
        0.1 * 3: False,
        22: True,
        -0.1: True,
        0.7000000000000001: False,
    }
    for value, expected in cases.items():
        (payload, _) = _limit_payloads("1.6", value)
        assert accepts_validator(validator, payload) is expected, value
        assert accepts_typed(typed, payload) is expected, value
    assert error_of(schemas, "SetChargingProfile", _limit_payloads("1.6", 7.55)[0], False) == (
        "PropertyConstraintViolation",
        "SetChargingProfile: data.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0]"
        ".limit must be multiple of 0.1",
    )
