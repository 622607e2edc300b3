"""The OCPP JSON schemas of one version, compiled once per action (no I/O after load).

The ocpp library ships the official schemas and validates with ``jsonschema`` on every
message (0.4-1 ms each, in a thread); here the same files are compiled with
``fastjsonschema`` into plain Python functions, once per action and direction, and a
violation raises the ocpp library's error class for the rule, spelt the version's way.

``format`` keywords are dropped before compiling: the stock validator does not check
formats either, and a charger sending ``2026-01-01T00:00:00`` without an offset should be
accepted (the normaliser reads it as UTC) rather than lose its readings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import msgspec
import ocpp
from ocpp.exceptions import (
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)

from ocpp_gateway.typed import struct_of

__all__ = ["SchemaMissing", "Schemas"]

_convert = msgspec.convert

_ROOT = Path(ocpp.__file__).parent
_PROPERTY_RULES = frozenset(
    ("enum", "maxLength", "minLength", "minimum", "maximum", "multipleOf", "pattern")
)


class SchemaMissing(LookupError):
    """No schema for this action in this version: the action is unknown."""


#: where a string enum's values are kept once it is compiled as a pattern (for the message)
_ENUM_KEY = "x-gridctl-enum"


#: keywords whose value maps names to schemas: a property called ``format`` (1.6
#: sampledValue's Raw/SignedData) is a name there, not the keyword
_NAMED = frozenset(("properties", "definitions", "patternProperties"))


def _strip_formats(node: Any) -> Any:
    if isinstance(node, dict):
        out = {
            k: {n: _strip_formats(s) for n, s in v.items()}
            if k in _NAMED and isinstance(v, dict)
            else _strip_formats(v)
            for k, v in node.items()
            if k not in ("format", "$id")
        }
        return _enum_as_pattern(out)
    if isinstance(node, list):
        return [_strip_formats(v) for v in node]
    return node


def _enum_as_pattern(node: dict[str, Any]) -> dict[str, Any]:
    """A string enum checked as one anchored regular expression, the same rule.

    fastjsonschema compiles ``enum`` into a chain of ``isinstance(x, str) and x == ...``
    tests, one pair per allowed value: OCPP's measurand (22 values) and unit (18) enums,
    on each of a MeterValues' sampled values, were most of its validation time. With
    ``type: string`` on the same node a full match of ``^(?:v1|v2|...)\\Z`` (values
    escaped, ``\\Z`` so a trailing newline does not match) accepts exactly the enum's
    values, in one C call; a violation is still a PropertyConstraintViolation, and
    :meth:`Schemas.validate` words it as the enum's "must be one of".
    """
    values = node.get("enum")
    if (
        node.get("type") != "string"
        or "pattern" in node
        or not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) for v in values)
    ):
        return node
    out = {k: v for k, v in node.items() if k != "enum"}
    out["pattern"] = "^(?:" + "|".join(re.escape(v) for v in values) + ")\\Z"
    out[_ENUM_KEY] = values
    return out


@dataclass(eq=False)
class Schemas:
    """The compiled schemas of one OCPP version.

    ``directory``: the library's schema folder (``v16``); ``names``: (request, response)
    file name patterns with ``{action}``; ``occurrence`` and ``formation``: the version's
    error classes for a missing field and for anything else malformed (1.6 spells them
    ``OccurenceConstraintViolation`` and ``FormationViolation``).
    """

    directory: str
    names: tuple[str, str]
    occurrence: type[OCPPError]
    formation: type[OCPPError]
    _compiled: dict[tuple[str, bool], Callable[[Any], Any]] = field(
        default_factory=dict, repr=False
    )
    #: (action, response) -> the schema as msgspec types (``None``: none can be made)
    _typed: dict[tuple[str, bool], Any] = field(default_factory=dict, repr=False)

    def _load(self, action: str, response: bool) -> dict[str, Any]:
        name = self.names[response].format(action=action)
        path = _ROOT / self.directory / "schemas" / f"{name}.json"
        try:
            schema = json.loads(path.read_text(encoding="utf-8-sig"))
        except (FileNotFoundError, OSError):
            raise SchemaMissing(f"no {self.directory} schema for {action[:64]!r}") from None
        schema.pop("$schema", None)  # compile every draft alike (4 and 6 differ little)
        return schema

    def typed(self, action: str, response: bool = False) -> Any:
        """The schema as msgspec types (:mod:`ocpp_gateway.typed`), or ``None``."""
        key = (action, response)
        if key not in self._typed:
            self._typed[key] = struct_of(self._load(action, response), action)
        return self._typed[key]

    def compile(self, action: str, response: bool = False) -> Callable[[Any], Any]:
        """The validator of one action's request (or response) schema, compiled once."""
        key = (action, response)
        validator = self._compiled.get(key)
        if validator is None:
            validator = fastjsonschema.compile(_strip_formats(self._load(action, response)))
            self._compiled[key] = validator
        return validator

    def _error(self, rule: str | None) -> type[OCPPError]:
        if rule == "type":
            return TypeConstraintViolationError
        if rule == "required":
            return self.occurrence
        if rule in _PROPERTY_RULES:
            return PropertyConstraintViolationError
        return self.formation

    def validate(self, action: str, payload: Mapping[str, Any], response: bool = False) -> None:
        """Return, or raise the library's error class for the rule the payload breaks.

        The msgspec types are tried first: what they accept is valid. What they refuse
        (or an action without types) is decided by the compiled validator, which also
        words the error, so refusals read exactly as they did without the types.
        """
        typed = (
            self._typed[(action, response)]
            if (action, response) in self._typed
            else (self.typed(action, response))
        )
        if typed is not None:
            try:
                _convert(payload, typed, strict=True)
                return
            except msgspec.ValidationError:
                pass
        try:
            self.compile(action, response)(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            message = exc.message
            definition = exc.definition
            if exc.rule == "pattern" and isinstance(definition, dict) and _ENUM_KEY in definition:
                message = f"{exc.name} must be one of {definition[_ENUM_KEY]}"
            raise self._error(exc.rule)(description=f"{action}: {message}"[:255]) from None
