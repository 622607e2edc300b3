"""Handlers as decorated methods, and the key conversions around them (pure).

The ocpp library's model, kept: one ``@on("Action")`` method per action a charger sends,
called with snake_case keyword arguments, returning a typed ``call_result`` (the library's
dataclasses); ``@after("Action")`` runs once the answer is sent (the place for follow-up
calls). The marks are our own attributes, so routing reads nothing private of the library.

Keys are converted with the library's public rules, memoised: OCPP's key set is small
and fixed, and the regular expressions were a tenth of the receive path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from ocpp.charge_point import snake_to_camel_case

__all__ = ["Routes", "after", "on", "result_payload", "routes_of", "to_snake"]

F = TypeVar("F", bound=Callable[..., Any])
_ON = "__gridctl_on__"
_AFTER = "__gridctl_after__"
_RAW = "__gridctl_raw__"


def on(action: str | Enum, *, raw: bool = False) -> Callable[[F], F]:
    """Mark a method as the handler of ``action``.

    ``raw``: the method takes the validated camelCase payload as one argument instead of
    snake_case keywords -- for the hottest calls only (1.6 MeterValues), where the
    snake_case copy of every nested sampled value was a tenth of the receive path.
    """

    def mark(fn: F) -> F:
        setattr(fn, _ON, str(getattr(action, "value", action)))
        if raw:
            setattr(fn, _RAW, True)
        return fn

    return mark


def after(action: str | Enum) -> Callable[[F], F]:
    """Mark a method to run after ``action`` was answered (with the same arguments)."""

    def mark(fn: F) -> F:
        setattr(fn, _AFTER, str(getattr(action, "value", action)))
        return fn

    return mark


@dataclasses.dataclass(frozen=True, slots=True)
class Routes:
    """Action -> method name, for ``@on`` and ``@after``."""

    on: dict[str, str]
    after: dict[str, str]
    #: the ``on`` actions whose handler takes the raw camelCase payload
    raw: frozenset[str] = frozenset()


def routes_of(cls: type) -> Routes:
    """The marked methods of a handler class (computed once per class by the caller)."""
    on_: dict[str, str] = {}
    after_: dict[str, str] = {}
    raw: set[str] = set()
    for name in dir(cls):
        fn = getattr(cls, name, None)
        if (action := getattr(fn, _ON, None)) is not None:
            on_[action] = name
            if getattr(fn, _RAW, False):
                raw.add(action)
        if (action := getattr(fn, _AFTER, None)) is not None:
            after_[action] = name
    return Routes(on_, after_, frozenset(raw))


_SNAKE_1 = re.compile("(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile("([a-z0-9])([A-Z])(?=\\S)")
_SNAKE_MEMO: dict[str, str] = {}
_CAMEL_MEMO: dict[str, str] = {}
_MEMO_MAX = 10_000  # a fuzzing charger must not grow a memo without bound
_NESTED = (dict, list)


def _snake_key(key: str) -> str:
    out = _SNAKE_MEMO.get(key)
    if out is None:
        # The library's rule (camel_to_snake_case) on one key, with its special cases.
        k = key.replace("ocppCSMSURL", "ocpp_csms_url").replace("V2X", "_v2x")
        out = _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", k.replace("V2G", "_v2g"))).lower()
        if len(_SNAKE_MEMO) < _MEMO_MAX:
            _SNAKE_MEMO[key] = out
    return out


#: a dict's key tuple -> its snake_case keys, or None when they are snake_case already
_SHAPES: dict[tuple[str, ...], tuple[str, ...] | None] = {}


def _shape(keys: tuple[str, ...]) -> tuple[str, ...] | None:
    snake = tuple(_SNAKE_MEMO.get(k) or _snake_key(k) for k in keys)
    out = None if snake == keys else snake
    if len(_SHAPES) < _MEMO_MAX:
        _SHAPES[keys] = out
    return out


def to_snake(data: Any) -> Any:
    """camelCase keys -> snake_case keys, recursively (what handlers receive).

    Memoised per key set: a dict whose keys are snake_case already (every 1.6
    ``sampledValue``: value, measurand, phase, unit ...) and holds nothing nested is
    returned as it is, not copied. Handlers never mutate what they receive.
    """
    if type(data) is dict:
        keys = tuple(data)
        snake = _SHAPES[keys] if keys in _SHAPES else _shape(keys)
        out = data if snake is None else dict(zip(snake, data.values(), strict=True))
        for k, v in out.items():
            if type(v) in _NESTED:
                if out is data:
                    out = dict(data)
                out[k] = to_snake(v)
        return out
    if type(data) is list:
        return [v if type(v) not in _NESTED else to_snake(v) for v in data]
    return data


def _camel_key(key: str) -> str:
    out = _CAMEL_MEMO.get(key)
    if out is None:
        (out,) = snake_to_camel_case({key: None})  # the library's rule, public API
        if len(_CAMEL_MEMO) < _MEMO_MAX:
            _CAMEL_MEMO[key] = out
    return out


def _to_camel(value: Any) -> Any:
    if type(value) is dict:
        return {_camel_key(k): _to_camel(v) for k, v in value.items() if v is not None}
    if type(value) is list:
        return [_to_camel(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return result_payload(value)
    return value


_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def result_payload(result: Any) -> dict[str, Any]:
    """A ``call_result`` dataclass -> its camelCase JSON object, Nones dropped.

    Shallow over the dataclass's own fields (names converted once per class), instead of
    ``dataclasses.asdict``, which deep-copies every value on every answer.
    """
    cls = type(result)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(
            (f.name, _camel_key(f.name)) for f in dataclasses.fields(result)
        )
    out = {}
    for name, camel in names:
        value = getattr(result, name)
        if value is not None:
            out[camel] = value if type(value) in (str, int, float) else _to_camel(value)
    return out
