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
        return rng.choice([0, 1, -7, 2**31 - 1, 2**40])
    if kind == "number":
        return rng.choice([0, 1.5, -2, 1e300, 7])
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
        return put(rng.choice([True, "1.5", None]))
    return put(rng.choice([None, "", 0, [None], {"a": 1}]))


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
        {"type": "integer", "minimum": 0},
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
