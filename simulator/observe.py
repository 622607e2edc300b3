"""What the fleet saw, for the demo's live view and the benchmarks.

One :class:`Observations` per fleet (not per charger), so 10,000 chargers share a few
counters and one latency reservoir. Benchmarks read it directly::

    obs = fleet.observations
    obs.reset()                              # start a measurement window
    ...
    obs.ack_latency_ms(50), obs.ack_latency_ms(99)
    [e for e in obs.profile_events if e.action == "SetChargingProfile"]

or register ``obs.listeners.append(callback)`` to be called with each
:class:`ProfileEvent` as it arrives (the time-to-charger benchmark does that).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class ProfileEvent:
    """A SetChargingProfile or ClearChargingProfile as a charger received it."""

    station_id: str
    action: str  # SetChargingProfile | ClearChargingProfile
    at: float  # POSIX seconds when the charger received it
    status: str  # what the charger answered
    purpose: str | None = None
    limit: float | None = None
    unit: str | None = None
    valid_to: float | None = None


class LatencyReservoir:
    """The last ``size`` latencies (ms), for exact percentiles over a recent window."""

    __slots__ = ("_count", "_size", "_values")

    def __init__(self, size: int = 200_000) -> None:
        self._values = array("d")
        self._size = size
        self._count = 0

    def add(self, ms: float) -> None:
        if len(self._values) < self._size:
            self._values.append(ms)
        else:
            self._values[self._count % self._size] = ms
        self._count += 1

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile ``q`` (0-100), or ``None`` with no samples."""
        if not self._values:
            return None
        ordered = sorted(self._values)
        rank = max(1, math.ceil(q / 100.0 * len(ordered)))
        return ordered[rank - 1]

    def clear(self) -> None:
        self._values = array("d")
        self._count = 0


class Observations:
    """Fleet-wide counters, ack latencies and the recent profile events."""

    def __init__(self, events: int = 100_000) -> None:
        self.latency = LatencyReservoir()
        self.calls: Counter[str] = Counter()  # action -> calls answered with a CallResult
        self.call_errors: Counter[str] = Counter()  # "Action:ErrorCode" -> count
        self.timeouts: Counter[str] = Counter()  # action -> calls that got no answer
        self.received: Counter[str] = Counter()  # action the CSMS sent -> count
        self.connects = 0
        self.disconnects = 0
        self.connect_failures: Counter[str] = Counter()  # reason -> count
        self.profile_events: deque[ProfileEvent] = deque(maxlen=events)
        self.listeners: list[Callable[[ProfileEvent], None]] = []

    def reset(self) -> None:
        """Start a new measurement window (keeps listeners)."""
        self.latency.clear()
        for counter in (
            self.calls,
            self.call_errors,
            self.timeouts,
            self.received,
            self.connect_failures,
        ):
            counter.clear()
        self.connects = self.disconnects = 0
        self.profile_events.clear()

    def ack(self, action: str, ms: float) -> None:
        self.calls[action] += 1
        self.latency.add(ms)

    def profile_event(self, event: ProfileEvent) -> None:
        self.received[event.action] += 1
        self.profile_events.append(event)
        for listener in self.listeners:
            listener(event)

    def ack_latency_ms(self, q: float) -> float | None:
        """Percentile ``q`` of the CSMS's answer time to our calls, in milliseconds."""
        return self.latency.percentile(q)

    def summary(self) -> dict[str, object]:
        """A JSON-able snapshot (the CLI prints it; benchmarks log it)."""
        p50, p99 = self.ack_latency_ms(50), self.ack_latency_ms(99)
        return {
            "calls": sum(self.calls.values()),
            "meter_values": self.calls["MeterValues"] + self.calls["TransactionEvent"],
            "call_errors": dict(self.call_errors),
            "timeouts": dict(self.timeouts),
            "profiles_received": dict(self.received),
            "connects": self.connects,
            "disconnects": self.disconnects,
            "connect_failures": dict(self.connect_failures),
            "ack_p50_ms": None if p50 is None else round(p50, 2),
            "ack_p99_ms": None if p99 is None else round(p99, 2),
        }
