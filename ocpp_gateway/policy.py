"""The delivery policy: what to do about one station's desired limit (pure, no I/O).

:func:`decide` answers "send, clear or hold?" from the desired command, what the charger
holds from us (:class:`Memory`) and the time; :func:`answered` folds a charger's answer
into the memory and names the next purpose to try (the fallback from a station-wide cap
to TxDefaultProfile); :func:`status_of` and :func:`status_of_error` map answers to the
statuses of ``ocpp.command_results``. The async worker in :mod:`ocpp_gateway.commands`
only carries these out, so every rule here is tested with values and a fake clock.

Commands change only when they matter (docs/control-law.md §6): a target within the
deadband ``max(threshold_kw, deadband_pct % of it)`` of the last one the charger took is
not sent (emergencies included), except as a refresh after ``min_interval_s`` (a charger
that lost the profile gets it back); a lower target, a new end (validTo) or a new priority
(stack level) goes out at once; a higher one waits until ``change_interval_s`` after the
last change. Fields that are not in the profile (``station_shed_kw``, ``command_ts``, the
signal id) never cause a send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.contracts import SetChargingProfileCommand

__all__ = [
    "Clear",
    "Delivered",
    "Hold",
    "Memory",
    "Rules",
    "Send",
    "answered",
    "decide",
    "status_of",
    "status_of_error",
]


@dataclass(frozen=True, slots=True)
class Rules:
    """The deadband and intervals (the ``GatewayConfig`` fields of the same names)."""

    threshold_kw: float = 1.0
    deadband_pct: float = 5.0
    min_interval_s: float = 300.0
    change_interval_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Delivered:
    """A limit the charger accepted from us."""

    target_kw: float
    dr_end_ts: datetime
    signal_id: str
    at: datetime
    priority: int = 2


@dataclass(frozen=True, slots=True)
class Memory:
    """What delivery remembers of a station: the accepted limit, and the purpose that
    worked (tried first next time; kept across reconnects and clears)."""

    sent: Delivered | None = None
    purpose: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """Nothing to send now (``why`` goes into the debug log); ``retry_in``: decide again
    in that many seconds (a raise waiting for the change interval), else on the next
    update."""

    why: str
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    """Clear our profile (the desired state is a tombstone: no limit any more)."""

    signal_id: str | None


@dataclass(frozen=True, slots=True)
class Send:
    """Send the desired limit, starting with purpose number ``purpose``."""

    purpose: int


Action = Hold | Clear | Send

#: every status a command result may carry
STATUSES = frozenset(("Accepted", "Rejected", "NotSupported", "Timeout", "Offline"))
_UNSUPPORTED = frozenset(("NotImplemented", "NotSupported"))


def decide(
    desired: SetChargingProfileCommand | None,
    memory: Memory,
    now: datetime,
    rules: Rules,
    *,
    force: bool = False,
) -> Action:
    """What to do about ``desired`` (None: a tombstone) given what the charger holds.

    ``force``: the charger (re)connected, so what it holds is unknown: send regardless
    of the deadband and intervals.
    """
    if desired is None:
        return Clear(memory.sent.signal_id if memory.sent else None)
    if desired.dr_end_ts <= now:
        return Hold("already over; the sink's tombstone follows")
    last = memory.sent
    if (
        force
        or last is None
        or desired.dr_end_ts != last.dr_end_ts
        or desired.priority != last.priority
    ):
        return Send(memory.purpose)
    age = (now - last.at).total_seconds()
    delta = desired.target_power_kw - last.target_kw
    band = max(
        rules.threshold_kw,
        rules.deadband_pct / 100.0 * max(desired.target_power_kw, last.target_kw),
    )
    if abs(delta) <= band + 1e-9:
        if age >= rules.min_interval_s:
            return Send(memory.purpose)  # the refresh
        return Hold("within the deadband")
    if delta < 0 or age >= rules.change_interval_s:
        return Send(memory.purpose)
    return Hold("a raise waits for the change interval", rules.change_interval_s - age)


def answered(
    memory: Memory,
    desired: SetChargingProfileCommand,
    purpose: int,
    status: str,
    now: datetime,
    purposes: int,
) -> tuple[Memory, int | None]:
    """Fold the answer to purpose number ``purpose`` in; (memory, next purpose or None).

    Accepted: remembered, done. Rejected / NotSupported: the next purpose, if any (many
    chargers refuse the station-wide cap). Timeout / Offline: done; the next update or
    the reconnect tries again.
    """
    if status == "Accepted":
        sent = Delivered(
            desired.target_power_kw, desired.dr_end_ts, desired.signal_id, now, desired.priority
        )
        return Memory(sent, purpose), None
    if status in ("Rejected", "NotSupported") and purpose + 1 < purposes:
        return memory, purpose + 1
    return memory, None


def status_of(action: str, answer: Mapping[str, Any]) -> str:
    """A charger's answer payload -> Accepted | Rejected | NotSupported."""
    status = answer.get("status")
    if action == "ClearChargingProfile" and status == "Unknown":
        return "Accepted"  # no such profile on the charger: cleared all the same
    if status in ("Accepted", "Rejected", "NotSupported"):
        return str(status)
    return "Rejected"  # a status we do not know is not a limit in force


def status_of_error(code: str) -> str:
    """A CallError code from the charger -> NotSupported | Rejected."""
    return "NotSupported" if code in _UNSUPPORTED else "Rejected"
