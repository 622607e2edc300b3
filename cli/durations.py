"""One duration syntax for every command: ``90s``, ``5m``, ``1h``, ``1h30m``, ``500ms``.

A bare number is seconds, so scripts written against the older float options still work.
The API's ``duration`` field takes the same forms (and ISO 8601 ``PT15M``).
"""

from __future__ import annotations

import re

import typer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
EXAMPLES = "90s, 5m, 1h, 1h30m, 500ms"


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError naming the examples when it is not a duration."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    parts = _PART.findall(t)
    if not t or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"not a duration: {text!r} (e.g. {EXAMPLES})")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def duration_option(option: str, *, minimum: float = 0.0) -> object:
    """A typer callback turning the option's text into seconds (>= ``minimum``)."""

    def convert(value: str | None) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=option) from None
        if seconds < minimum:
            raise typer.BadParameter(
                f"{value!r} is below the minimum of {minimum:g} s", param_hint=option
            )
        return seconds

    return convert
