"""The delivery policy with values and a fake clock: deadband, intervals, fallback, statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ocpp_gateway.policy import (
    Clear,
    Delivered,
    Hold,
    Memory,
    Rules,
    Send,
    answered,
    decide,
    status_of,
    status_of_error,
)
from pipeline.contracts import SetChargingProfileCommand

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
END = T0 + timedelta(hours=2)
RULES = Rules(threshold_kw=1.0, deadband_pct=5.0, min_interval_s=300.0, change_interval_s=30.0)


def cmd(kw: float, *, priority: int = 2, end: datetime = END) -> SetChargingProfileCommand:
    return SetChargingProfileCommand(
        station_id="CP", target_power_kw=kw, signal_id="sig", priority=priority,
        dr_end_ts=end, command_ts=T0,
    )  # fmt: skip


def held(kw: float, at: datetime = T0, purpose: int = 0, priority: int = 2) -> Memory:
    return Memory(Delivered(kw, END, "sig", at, priority), purpose)


def test_first_command_is_sent_with_the_station_wide_purpose() -> None:
    assert decide(cmd(11.0), Memory(), T0, RULES) == Send(0)


@pytest.mark.parametrize(
    ("held_kw", "kw", "after_s", "expected"),
    [
        # band max(1 kW, 5 % of max(target, held)): 1 kW around 11 kW
        (11.0, 11.5, 10, Hold("within the deadband")),
        (11.0, 12.0, 10, Hold("within the deadband")),  # exactly the band: still within
        (11.0, 10.0, 10, Hold("within the deadband")),
        (11.0, 9.9, 1, Send(1)),  # a cut of 1.1 kW goes out at once
        (11.0, 12.5, 10, Hold("a raise waits for the change interval", 20.0)),  # 30 - 10
        (11.0, 12.5, 30, Send(1)),  # ... and goes out once 30 s passed
        (11.0, 11.2, 300, Send(1)),  # the refresh after min_interval_s, moved or not
        # around 40 kW the band is 5 %: 2.095 kW for 41.9, 2.0 for a cut from 40
        (40.0, 41.9, 100, Hold("within the deadband")),
        (40.0, 37.8, 1, Send(1)),  # -2.2 kW > 2.0 kW
    ],
)
def test_deadband_and_intervals_with_a_fake_clock(held_kw, kw, after_s, expected) -> None:
    memory = held(held_kw, purpose=1)  # the charger took TxDefaultProfile last time
    assert decide(cmd(kw), memory, T0 + timedelta(seconds=after_s), RULES) == expected


def test_new_ends_new_priorities_and_reconnects_go_out_at_once() -> None:
    memory = held(11.0)
    now = T0 + timedelta(seconds=5)
    assert decide(cmd(11.1, priority=1), memory, now, RULES) == Send(0)  # new stack level
    assert decide(cmd(11.1, end=END + timedelta(minutes=5)), memory, now, RULES) == Send(0)
    assert decide(cmd(11.1), memory, now, RULES, force=True) == Send(0)
    # an emergency within the deadband of the emergency limit held is not re-sent
    assert isinstance(decide(cmd(11.1, priority=1), held(11.0, priority=1), now, RULES), Hold)


def test_a_tombstone_clears_and_an_ended_event_is_left_to_its_tombstone() -> None:
    assert decide(None, held(11.0), T0, RULES) == Clear("sig")
    assert decide(None, Memory(), T0, RULES) == Clear(None)  # clear what a restart left
    assert isinstance(decide(cmd(5.0, end=T0), Memory(), T0, RULES), Hold)


def test_fallback_from_the_station_wide_cap_to_tx_default() -> None:
    c, now = cmd(7.0), T0 + timedelta(seconds=1)
    memory, nxt = answered(Memory(), c, 0, "NotSupported", now, purposes=2)
    assert (memory, nxt) == (Memory(), 1)
    memory, nxt = answered(memory, c, 1, "Accepted", now, purposes=2)
    assert nxt is None and memory == Memory(Delivered(7.0, END, "sig", now, 2), 1)
    # a refusal of the last purpose ends the attempt and keeps what the charger holds
    assert answered(memory, cmd(6.0), 1, "Rejected", now, purposes=2) == (memory, None)
    # no answer: nothing learnt, try again on the next update or reconnect
    assert answered(Memory(), c, 0, "Timeout", now, purposes=2) == (Memory(), None)
    assert answered(Memory(), c, 0, "Offline", now, purposes=2) == (Memory(), None)


@pytest.mark.parametrize(
    ("action", "answer", "status"),
    [
        ("SetChargingProfile", {"status": "Accepted"}, "Accepted"),
        ("SetChargingProfile", {"status": "NotSupported"}, "NotSupported"),
        ("SetChargingProfile", {"status": "Bogus"}, "Rejected"),
        ("SetChargingProfile", {}, "Rejected"),
        ("ClearChargingProfile", {"status": "Unknown"}, "Accepted"),  # nothing to clear
        ("SetChargingProfile", {"status": "Unknown"}, "Rejected"),
    ],
)
def test_status_mapping(action: str, answer: dict, status: str) -> None:
    assert status_of(action, answer) == status


def test_callerror_codes_map_to_not_supported_or_rejected() -> None:
    assert status_of_error("NotImplemented") == "NotSupported"
    assert status_of_error("NotSupported") == "NotSupported"
    assert status_of_error("InternalError") == "Rejected"
