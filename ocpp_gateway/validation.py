"""Schema validation of incoming payloads, compiled once per action (no I/O after load).

The ocpp library validates with ``jsonschema`` on every message (0.4-1 ms each, in a
thread); here the same official JSON schemas shipped with the library are compiled with
``fastjsonschema`` into plain Python functions, once per (version, action). Violations
map to the CallError codes of the spec, per version spelling.

``format`` keywords are dropped before compiling: the stock validator does not check
formats either, and a charger sending ``2026-01-01T00:00:00`` without an offset should be
accepted (the normaliser reads it as UTC) rather than lose its readings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp
from ocpp.exceptions import (
    FormationViolationError,
    FormatViolationError,
    OccurenceConstraintViolationError,
    OccurrenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)

__all__ = ["SchemaMissing", "compile_validator", "validate_request"]

_SCHEMAS = Path(ocpp.__file__).parent
_DIRS = {"1.6": "v16", "2.0.1": "v201"}


class SchemaMissing(LookupError):
    """No schema for this action in this version: the action is unknown."""


def _strip_formats(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_formats(v) for k, v in node.items() if k not in ("format", "$id")}
    if isinstance(node, list):
        return [_strip_formats(v) for v in node]
    return node


@cache
def compile_validator(version: str, action: str, response: bool = False) -> Callable[[Any], Any]:
    """The compiled validator of one action's request (or response) schema."""
    if version == "1.6":
        name = f"{action}Response" if response else action
    else:
        name = f"{action}{'Response' if response else 'Request'}"
    path = _SCHEMAS / _DIRS[version] / "schemas" / f"{name}.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SchemaMissing(f"no OCPP {version} schema for {action}") from None
    schema.pop("$schema", None)  # compile every draft the same way (4 and 6 differ little)
    return fastjsonschema.compile(_strip_formats(schema))  # type: ignore[no-any-return]


def _error_for(rule: str | None, version: str) -> type[OCPPError]:
    v16 = version == "1.6"
    if rule == "type":
        return TypeConstraintViolationError
    if rule == "required":
        return OccurenceConstraintViolationError if v16 else OccurrenceConstraintViolationError
    if rule in ("enum", "maxLength", "minLength", "minimum", "maximum", "multipleOf", "pattern"):
        return PropertyConstraintViolationError
    return FormationViolationError if v16 else FormatViolationError


def validate_request(version: str, action: str, payload: dict[str, Any]) -> None:
    """Raise the ocpp library's error class for the violated rule, or return."""
    validator = compile_validator(version, action)
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        error = _error_for(exc.rule, version)
        raise error(description=f"{action}: {exc.message}"[:255]) from None
