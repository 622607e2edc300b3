"""What the gateway's commands came to, said in one log line per interval.

A DR event at 10,000 chargers is 10,000 SetChargingProfile answers within a second or two.
A line per answer (14 µs each to a file, on the gateway's only core, while it delivers)
buries the few that matter; every answer is on ``ocpp.command_results`` and counted in
``gridctl_commands_total`` anyway. So each answer is a DEBUG line, and the INFO log gets
one line per interval with the counts by action and status and, for anything but
Accepted, a few of the stations it came from.
"""

from __future__ import annotations

from collections import Counter

#: stations named per (action, status) that was not Accepted
EXAMPLES = 5


class Outcomes:
    """Counts of answers since the last :meth:`take`."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._examples: dict[tuple[str, str], list[str]] = {}

    def note(self, station_id: str, action: str, status: str) -> None:
        key = (action, status)
        self._counts[key] += 1
        if status != "Accepted":
            named = self._examples.setdefault(key, [])
            if len(named) < EXAMPLES:
                named.append(station_id)

    def take(self) -> str | None:
        """The line for what was noted since the last call (None: nothing), and reset."""
        if not self._counts:
            return None
        parts = []
        for (action, status), n in sorted(self._counts.items()):
            part = f"{action} {status} {n:,}"
            named = self._examples.get((action, status))
            if named:
                more = ", ..." if n > len(named) else ""
                part += f" ({', '.join(named)}{more})"
            parts.append(part)
        self._counts.clear()
        self._examples.clear()
        return "; ".join(parts)
