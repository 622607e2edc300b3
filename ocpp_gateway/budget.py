"""A connection's budget of messages and bytes per second (pure; the clock is passed in).

Two token buckets, one for messages and one for bytes (characters of the text frame, as
websockets hands it over), each with a sustained rate and a burst. A frame always costs
its tokens; when a bucket is in debt the connection waits ``debt / rate`` seconds before
the frame is looked at, so a charger over its budget is read at the budget's pace and TCP
pushes back on it, while everyone else's frames go on. A charger that stays in debt frame
after frame for ``disconnect_s`` is not a backlog being flushed but a flood: the caller
closes it. Real chargers send one call and wait for its answer (OCPP's synchronicity
rule), so they spend their burst only when flushing a queue after being offline.
The gateway keeps one budget per station id across reconnects, so a flooder cannot refill
its burst by reconnecting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Budget"]


@dataclass(slots=True)
class Budget:
    msgs_per_s: float
    msgs_burst: float
    bytes_per_s: float
    bytes_burst: float
    disconnect_s: float
    _msgs: float = field(init=False)
    _bytes: float = field(init=False)
    _last: float | None = field(init=False, default=None)
    #: when the current unbroken run of waits began (None: not waiting)
    throttled_since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._msgs = self.msgs_burst
        self._bytes = self.bytes_burst

    def charge(self, size: int, now: float) -> float:
        """Spend one message of ``size``; return the seconds to wait before handling it."""
        if self._last is not None:
            elapsed = now - self._last
            self._msgs = min(self.msgs_burst, self._msgs + elapsed * self.msgs_per_s)
            self._bytes = min(self.bytes_burst, self._bytes + elapsed * self.bytes_per_s)
        self._last = now
        self._msgs -= 1.0
        self._bytes -= size
        wait = max(-self._msgs / self.msgs_per_s, -self._bytes / self.bytes_per_s, 0.0)
        if wait == 0.0:
            self.throttled_since = None
        elif self.throttled_since is None:
            self.throttled_since = now
        return wait

    def flooding(self, now: float) -> bool:
        """True when every frame for ``disconnect_s`` had to wait: close the connection."""
        return self.throttled_since is not None and now - self.throttled_since >= self.disconnect_s
