"""Log lines that a charger cannot forge or flood (no I/O beyond ``logging``).

Everything a charger chooses (its id in the URL, message ids, actions, values quoted in
errors) may carry newlines, NUL or terminal escapes: :func:`clean` renders such text with
the control characters escaped and a length cap, so one log record stays one line.

:class:`Warnings` lets the first warnings of a station through and then at most one
per ``interval_s``, folding the rest into a count ("... and 4,211 more like it in 10 s"):
a million bad frames from one charger become a handful of lines, not 85 MB.
:class:`Allowance` caps them all together: when the disk stalls, every charger's readings
are refused at once, and five lines from each of 10,000 stations were 50,000 log records
(py-spy: a fifth of the gateway's GIL time in ``logging`` during such a storm, which made
it worse); past the gateway-wide allowance one line says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Allowance", "Warnings", "clean"]

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)}
_CONTROL.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\"})
_TABLE = str.maketrans({chr(k): v for k, v in _CONTROL.items()})


def clean(text: object, limit: int = 200) -> str:
    """``text`` with control characters and backslashes escaped, cut to ``limit`` chars."""
    s = text if isinstance(text, str) else str(text)
    if len(s) > limit:
        s = s[:limit] + "..."
    return s.translate(_TABLE)


class _Window:
    """``burst`` lines per ``interval_s``, the rest counted: the state both limits keep."""

    def __init__(self, burst: int, interval_s: float, clock: Callable[[], float]) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.left = burst
        self.start = clock()
        self.suppressed = 0

    def roll(self) -> tuple[int, float]:
        """Open a new window if this one is over; what the closed one suppressed and how
        long it lasted (``(0, 0.0)`` while it is still open)."""
        now = self.clock()
        if now - self.start < self.interval_s:
            return 0, 0.0
        closed = (self.suppressed, now - self.start)
        self.start, self.left, self.suppressed = now, self.burst, 0
        return closed

    def spend(self) -> bool:
        """One line, if the window has one left (else it is counted)."""
        if self.left <= 0:
            self.suppressed += 1
            return False
        self.left -= 1
        return True


class Allowance:
    """Warning lines that many sources together may log: ``burst`` per ``interval_s``."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 200,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = logger
        self._window = _Window(burst, interval_s, clock)

    def take(self) -> bool:
        """Whether one more line may be logged now (else it is counted)."""
        suppressed, seconds = self._window.roll()
        if suppressed:
            w = self._window
            self.log.warning(
                "%d more warnings not logged in the last %.0f s (over %d per %g s "
                "across the gateway)",
                suppressed, seconds, w.burst, w.interval_s,
            )  # fmt: skip
        return self._window.spend()


class Warnings:
    """Rate-limited warnings of one source (a station connection, the handshake refusals);
    ``shared``: an :class:`Allowance` the source's lines also draw on."""

    def __init__(
        self,
        logger: logging.Logger,
        prefix: str,
        *,
        burst: int = 5,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        shared: Allowance | None = None,
    ) -> None:
        self.log = logger
        self.prefix = clean(prefix, 80)
        self.shared = shared
        self._window = _Window(burst, interval_s, clock)

    @property
    def suppressed(self) -> int:
        """Lines of this source left out since its last summary."""
        return self._window.suppressed

    def _may(self) -> bool:
        return self.shared is None or self.shared.take()

    def warning(self, message: str, *args: object) -> None:
        """Log ``message % args`` (non-numbers :func:`clean`-ed) unless over the rate."""
        suppressed, seconds = self._window.roll()
        if suppressed and self._may():
            self.log.warning(
                "%s%d more warnings like the ones above in the last %.0f s",
                self.prefix, suppressed, seconds,
            )  # fmt: skip
        if not self._window.spend() or not self._may():
            return
        self.log.warning(
            self.prefix + message, *(a if isinstance(a, int | float) else clean(a) for a in args)
        )

    def close(self) -> None:
        """Say how many were folded since the last line (the connection ended)."""
        if self._window.suppressed and self._may():
            self.log.warning(
                "%s%d more warnings like the ones above before it disconnected",
                self.prefix,
                self._window.suppressed,
            )
        self._window.suppressed = 0
