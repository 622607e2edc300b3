"""Log lines a charger cannot forge or flood (issue 11): the pure helpers, then a charger
sending bad frames full of newlines and NUL to a running gateway."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets

from ocpp_gateway import Gateway
from ocpp_gateway.logsafe import Allowance, Warnings, clean
from ocpp_gateway.outcomes import Outcomes


def test_clean_escapes_control_characters_and_caps_length() -> None:
    assert clean("a\nb\r\x00c\x1b[31m\\") == "a\\nb\\r\\x00c\\x1b[31m\\\\"
    assert clean("x" * 300, 10) == "xxxxxxxxxx..."
    assert clean("stations Zürich-1 ok") == "stations Zürich-1 ok"


def test_warnings_fold_repeats_into_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warn = Warnings(
        logging.getLogger("t"), "station CP: ", burst=3, interval_s=10, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(1000):
            warn.warning("bad frame %s", f"n{i}\nforged")
        now[0] = 10.0
        warn.warning("bad frame %s", "again")
        warn.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == [f"station CP: bad frame n{i}\\nforged" for i in range(3)]
    assert lines[3] == "station CP: 997 more warnings like the ones above in the last 10 s"
    assert lines[4] == "station CP: bad frame again"
    assert len(lines) == 5  # nothing left over to report at close


def test_many_stations_warning_at_once_share_one_allowance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stalled disk refuses every charger's readings at once: 10,000 stations x 5 lines
    each were 50,000 records. With a shared allowance of 20 lines per 10 s, 20 are logged
    and one line counts the 49,980 others (per station they are not counted again)."""
    now = [0.0]
    logger = logging.getLogger("t")
    shared = Allowance(logger, burst=20, interval_s=10, clock=lambda: now[0])
    stations = [
        Warnings(logger, f"station CP{i}: ", burst=5, interval_s=10, clock=lambda: now[0],
                 shared=shared)
        for i in range(10_000)
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="t"):
        for warn in stations:
            for _ in range(5):
                warn.warning("%d readings not durable, refusing ack: %s", 1, "timeout")
        now[0] = 10.0
        stations[0].warning("%d readings not durable, refusing ack: %s", 1, "again")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:20] == [
        f"station CP{i // 5}: 1 readings not durable, refusing ack: timeout" for i in range(20)
    ]
    assert lines[20] == (
        "49980 more warnings not logged in the last 10 s (over 20 per 10 s across the gateway)"
    )
    assert lines[21] == "station CP0: 1 readings not durable, refusing ack: again"
    assert len(lines) == 22


async def test_a_million_bad_frames_do_not_become_a_million_log_lines(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ocpp_gateway")
    frames = [
        "garbage\n2026-12-01 00:00:00 WARNING forged line\x00",
        json.dumps([2, "id\nforged", "No\nSuch\x00Action", {}]),
        json.dumps([3, "unsolicited\r\nx", {}]),
    ]
    async with websockets.connect(
        f"ws://127.0.0.1:{gateway.port}/ocpp/CP-NOISY",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
    ) as ws:
        for i in range(75):  # within the default budget's burst of 80
            await ws.send(frames[i % 3])
        await ws.send(json.dumps([2, "probe", "Heartbeat", {}]))
        while not (await ws.recv()).startswith('[3,"probe"'):
            pass
    async with asyncio.timeout(5):
        while "CP-NOISY" in gateway.stations:
            await asyncio.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if "CP-NOISY" in r.getMessage()]
    assert all("\n" not in line and "\r" not in line and "\x00" not in line for line in lines)
    assert 5 <= len(lines) <= 8, lines  # a burst of 5, then one line with the count
    assert any("more warnings like the ones above" in line for line in lines)
    assert any("\\nforged" in line for line in lines)


def test_outcomes_count_by_action_and_status_and_name_a_few_of_the_rest() -> None:
    out = Outcomes()
    for i in range(10_000):
        out.note(f"CP{i:05d}", "SetChargingProfile", "Accepted")
    for i in range(7):
        out.note(f"CP-R{i}", "SetChargingProfile", "Rejected")
    out.note("CP-X", "ClearChargingProfile", "Timeout")
    assert out.take() == (
        "ClearChargingProfile Timeout 1 (CP-X); SetChargingProfile Accepted 10,000; "
        "SetChargingProfile Rejected 7 (CP-R0, CP-R1, CP-R2, CP-R3, CP-R4, ...)"
    )
    assert out.take() is None  # said once
