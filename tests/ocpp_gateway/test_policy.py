"""The delivery policy with values and a fake clock: hysteresis, fallback, statuses."""

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
RULES = Rules(threshold_kw=1.0, min_interval_s=300.0)


def cmd(kw: float, *, priority: int = 2, end: datetime = END) -> SetChargingProfileCommand:
    return SetChargingProfileCommand(
        station_id="CP", target_power_kw=kw, signal_id="sig", priority=priority,
        dr_end_ts=end, command_ts=T0,
    )  # fmt: skip


def held(kw: float, at: datetime = T0, purpose: int = 0) -> Memory:
    return Memory(Delivered(kw, END, "sig", at), purpose)


def test_first_command_is_sent_with_the_station_wide_purpose() -> None:
    assert decide(cmd(11.0), Memory(), T0, RULES) == Send(0)


@pytest.mark.parametrize(
    ("kw", "after_s", "expected"),
    [
        (11.5, 10, Hold("within hysteresis")),  # moved 0.5 kW < 1 kW, 10 s later
        (10.01, 299, Hold("within hysteresis")),  # 0.99 kW, just before the refresh
        (12.0, 10, Send(1)),  # moved exactly the threshold
        (9.9, 1, Send(1)),  # a cut of 1.1 kW
        (11.2, 300, Send(1)),  # the refresh after min_interval_s, moved or not
    ],
)
def test_hysteresis_with_a_fake_clock(kw: float, after_s: int, expected) -> None:
    memory = held(11.0, purpose=1)  # the charger took TxDefaultProfile last time
    assert decide(cmd(kw), memory, T0 + timedelta(seconds=after_s), RULES) == expected


def test_emergencies_new_ends_and_reconnects_bypass_hysteresis() -> None:
    memory = held(11.0)
    now = T0 + timedelta(seconds=5)
    assert decide(cmd(11.1, priority=1), memory, now, RULES) == Send(0)
    assert decide(cmd(11.1, end=END + timedelta(minutes=5)), memory, now, RULES) == Send(0)
    assert decide(cmd(11.1), memory, now, RULES, force=True) == Send(0)


def test_a_tombstone_clears_and_an_ended_event_is_left_to_its_tombstone() -> None:
    assert decide(None, held(11.0), T0, RULES) == Clear("sig")
    assert decide(None, Memory(), T0, RULES) == Clear(None)  # clear what a restart left
    assert isinstance(decide(cmd(5.0, end=T0), Memory(), T0, RULES), Hold)


def test_fallback_from_the_station_wide_cap_to_tx_default() -> None:
    c, now = cmd(7.0), T0 + timedelta(seconds=1)
    memory, nxt = answered(Memory(), c, 0, "NotSupported", now, purposes=2)
    assert (memory, nxt) == (Memory(), 1)
    memory, nxt = answered(memory, c, 1, "Accepted", now, purposes=2)
    assert nxt is None and memory == Memory(Delivered(7.0, END, "sig", now), 1)
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
