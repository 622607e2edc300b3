"""An OCPP JSON schema as msgspec types: a fast check that accepts only what it accepts.

:func:`struct_of` turns one action's schema into ``msgspec.Struct`` types (objects with
``forbid_unknown_fields`` where the schema says ``additionalProperties: false``, string
enums as ``Literal``, ``maxLength`` / ``minItems`` as ``Meta`` constraints, optional
fields that may be absent but not ``null``). ``msgspec.convert`` checks a payload against
them in C, several times faster than the compiled validator walking the same dict.

It is used as a pre-check only (:meth:`ocpp_gateway.schemas.Schemas.validate`): a payload
the types accept is valid; one they refuse goes to the compiled validator, which decides
and words the CallError exactly as before. So the types must never accept what the
schema refuses; they may refuse more (a float ``1.0`` for an integer, an integer beyond
64 bits), which only costs the slow path. A schema that uses any keyword not listed here
gets no types (``None``): every payload of that action takes the compiled validator.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

__all__ = ["struct_of"]

#: keywords that do not constrain a value (annotations), or that the gateway does not
#: check (``format``, see schemas.py); ``additionalItems`` only means something when
#: ``items`` is a list, which :func:`_array` refuses
_IGNORED = frozenset(
    ("description", "title", "javaType", "$schema", "$id", "id", "comment", "default",
     "format", "additionalItems")
)  # fmt: skip
_SCALARS: dict[str, type] = {"integer": int, "number": float, "boolean": bool, "string": str}


class _Unsupported(Exception):
    """The schema uses something these types cannot say exactly."""


def struct_of(schema: dict[str, Any], name: str) -> Any:
    """The msgspec type of ``schema`` (an object schema), or ``None`` if it cannot be
    expressed exactly."""
    counter = itertools.count()
    try:
        typ = _type(schema, schema.get("definitions", {}), name, counter, ())
    except _Unsupported:
        return None
    return None if isinstance(typ, _Multiple) else typ


def _type(
    node: Any, defs: dict[str, Any], name: str, counter: itertools.count[int], seen: tuple
) -> Any:
    if not isinstance(node, dict):
        raise _Unsupported(repr(node)[:40])
    if "$ref" in node:
        ref = node["$ref"]
        if set(node) - {"$ref"} - _IGNORED or not isinstance(ref, str):
            raise _Unsupported("$ref with siblings")
        prefix = "#/definitions/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in defs or ref in seen:
            raise _Unsupported(ref)
        key = ref[len(prefix) :]
        return _type(defs[key], defs, key, counter, (*seen, ref))
    kind = node.get("type")
    if kind == "object":
        return _object(node, defs, name, counter, seen)
    if kind == "array":
        return _array(node, defs, name, counter, seen)
    if kind == "string":
        return _string(node)
    if kind in ("integer", "number"):
        return _number(node, kind)
    if isinstance(kind, str) and kind in _SCALARS:
        if set(node) - {"type", "additionalProperties"} - _IGNORED:
            raise _Unsupported(f"{kind} constraints")
        return _SCALARS[kind]
    raise _Unsupported(f"type {kind!r}")


#: bound of a ``multipleOf`` number: up to 2**53 an integer converts to float exactly, so
#: the check below sees the value the compiled validator sees (and no quotient overflows)
_EXACT = float(2**53)


def _number(node: dict[str, Any], kind: str) -> Any:
    """``integer`` / ``number`` with ``minimum`` (inclusive, as in drafts 4 and 6 without
    ``exclusiveMinimum``) and, for ``number``, ``multipleOf``.

    ``minimum`` must be a whole number below 2**53, so that ``ge`` compares exactly with
    any value msgspec accepts. ``multipleOf`` cannot be ``Meta(multiple_of=...)``: for a
    float msgspec tests ``fmod(x, m) == 0``, which refuses 7.5 for 0.1, while the compiled
    validator (what decides; fastjsonschema 2.22) tests whether
    ``Decimal(repr(x)) / Decimal(repr(m))`` is whole, which refuses 0.30000000000000004
    (a plain ``x / m`` would not). So such a number comes back as :class:`_Multiple`, and
    the object holding it runs that same test in ``__post_init__`` (:func:`_object`);
    anywhere else, no types. Only a float step is taken (for an integer step the
    validator tests integers with ``%``), and values within +-2**53.
    """
    if set(node) - {"type", "additionalProperties", "minimum", "multipleOf"} - _IGNORED:
        raise _Unsupported(f"{kind} constraints")
    meta: dict[str, Any] = {}
    if "minimum" in node:
        low = node["minimum"]
        if type(low) not in (int, float) or low != int(low) or abs(low) >= 2**53:
            raise _Unsupported("minimum")
        meta["ge"] = int(low) if kind == "integer" else float(low)
    step = node.get("multipleOf")
    if step is not None:
        if kind != "number" or type(step) is not float or not 1e-6 <= step <= 1e6:
            raise _Unsupported("multipleOf")
        meta.update(ge=max(meta.get("ge", -_EXACT), -_EXACT), le=_EXACT)
    typ = Annotated[_SCALARS[kind], msgspec.Meta(**meta)] if meta else _SCALARS[kind]
    return _Multiple(typ, step) if step is not None else typ


class _Multiple:
    """A ``number`` with ``multipleOf``: its type, and the step its holder checks."""

    def __init__(self, typ: Any, step: float) -> None:
        self.typ, self.step = typ, step


def _multiples_check(checks: tuple[tuple[str, str, float], ...]) -> Any:
    """``__post_init__`` of an object with ``multipleOf`` numbers: the validator's test.

    A ``ValueError`` here is a ``msgspec.ValidationError`` to the caller, so the payload
    goes to the compiled validator, which refuses it and words the error.
    """

    def __post_init__(self: Any) -> None:
        for attr, key, step in checks:
            value = getattr(self, attr)
            if value is msgspec.UNSET:
                continue
            quotient = Decimal(repr(value)) / Decimal(repr(step))
            if int(quotient) != quotient:
                raise ValueError(f"{key} is not a multiple of {step:g}")

    return __post_init__


def _string(node: dict[str, Any]) -> Any:
    # ``additionalProperties`` on a string node (1.6 has it on enums) constrains nothing
    if set(node) - {"type", "enum", "maxLength", "minLength", "additionalProperties"} - _IGNORED:
        raise _Unsupported("string keyword")
    enum = node.get("enum")
    base: Any = str
    if enum is not None:
        if not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum):
            raise _Unsupported("enum")
        base = Literal[tuple(enum)]  # type: ignore[valid-type]
    meta: dict[str, Any] = {}
    for keyword, arg in (("maxLength", "max_length"), ("minLength", "min_length")):
        if keyword in node:
            value = node[keyword]
            if type(value) is not int or value < 0:
                raise _Unsupported(keyword)
            meta[arg] = value
    if not meta:
        return base
    if enum is not None:
        raise _Unsupported("enum with a length")  # Meta does not apply to Literal
    return Annotated[str, msgspec.Meta(**meta)]


def _array(
    node: dict[str, Any], defs: dict[str, Any], name: str, counter: itertools.count[int], seen
) -> Any:
    if set(node) - {"type", "items", "minItems", "maxItems"} - _IGNORED:
        raise _Unsupported("array keyword")
    items = node.get("items")
    if not isinstance(items, dict):
        raise _Unsupported("items must be one schema")
    item = _type(items, defs, name + "Item", counter, seen)
    if isinstance(item, _Multiple):
        raise _Unsupported("multipleOf on array items")
    meta: dict[str, Any] = {}
    for keyword, arg in (("minItems", "min_length"), ("maxItems", "max_length")):
        if keyword in node:
            value = node[keyword]
            if type(value) is not int or value < 0:
                raise _Unsupported(keyword)
            meta[arg] = value
    return Annotated[list[item], msgspec.Meta(**meta)] if meta else list[item]  # type: ignore[valid-type]


def _object(
    node: dict[str, Any], defs: dict[str, Any], name: str, counter: itertools.count[int], seen
) -> Any:
    if (
        set(node)
        - {"type", "properties", "required", "additionalProperties", "definitions"}
        - (_IGNORED)
    ):
        raise _Unsupported("object keyword")
    extra = node.get("additionalProperties", True)
    if extra not in (True, False):  # a schema for extra properties: not expressible
        raise _Unsupported("additionalProperties schema")
    props = node.get("properties", {})
    required = node.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list):
        raise _Unsupported("properties")
    if any(r not in props for r in required):
        # a required key with no property schema: any value, but present; and with
        # additionalProperties false no value at all is valid. Not worth expressing.
        raise _Unsupported("required without a property")
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    multiples: list[tuple[str, str, float]] = []
    for key, sub in props.items():
        attr = f"f{next(counter)}"  # JSON keys need not be identifiers
        rename[attr] = key
        typ = _type(sub, defs, key, counter, seen)
        if isinstance(typ, _Multiple):
            multiples.append((attr, key, typ.step))
            typ = typ.typ
        if key in required:
            fields.append((attr, typ))
        else:  # may be absent, but ``null`` is not a value of the schema's type
            fields.append((attr, typ | msgspec.UnsetType, msgspec.UNSET))
    # required fields first: msgspec wants defaults after the fields without
    fields.sort(key=len)
    return msgspec.defstruct(
        f"{name}_{next(counter)}",
        fields,
        rename=rename,
        forbid_unknown_fields=not extra,
        omit_defaults=True,
        frozen=True,
        namespace={"__post_init__": _multiples_check(tuple(multiples))} if multiples else None,
    )
