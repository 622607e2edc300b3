"""The engine clock: wall time, or a virtual time that replay and tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class VirtualClock:
    """A clock that stands still until told: ``set(ts)`` or ``advance(delta)``.

    Pass it as ``Engine(clock=...)``: every NOW() in the compiled views then reads this time,
    so the same events give the same commands however fast the machine is.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the virtual clock needs an aware datetime")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def set(self, ts: datetime) -> None:
        if ts.tzinfo is None:
            raise ValueError("the virtual clock needs an aware datetime")
        self._now = ts

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


def wall_clock() -> datetime:
    return datetime.now(UTC)
