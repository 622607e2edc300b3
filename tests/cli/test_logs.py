"""Logs worth reading: event lines from the bus, library noise demoted, one-line errors,
JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cli.event_log import EventLog
from cli.logs import setup_logging
from pipeline import topics
from pipeline.bus import LocalBus, Message
from pipeline.contracts import (
    Alert,
    DemandResponseSignal,
    SetChargingProfileCommand,
    StationStatus,
    encode,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger as ``gridctl run`` sets it up, writing to a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("INFO", "text")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in ("websockets", "ocpp", "apscheduler"):
            logging.getLogger(name).setLevel(logging.NOTSET)


async def test_one_line_per_event_with_its_id(captured: io.StringIO) -> None:
    bus = LocalBus()
    await bus.start()
    events = EventLog(bus)
    await events.start()
    signal = DemandResponseSignal(
        signal_id="s-42", zone_id="zone-a", signal_type="CURTAIL", zone_limit_kw=40.0,
        start_ts=T0, end_ts=T0 + timedelta(minutes=30), received_ts=T0,
    )  # fmt: skip
    records = [
        (topics.STATION_STATUS, "CP-7", StationStatus(
            station_id="CP-7", event="Connected", ocpp_version="1.6", ts=T0)),
        (topics.STATION_STATUS, "CP-7", StationStatus(
            station_id="CP-7", event="BootNotification", status="Accepted", ts=T0)),
        (topics.DEMAND_RESPONSE, "s-42", signal),
        (topics.ALERTS_DR, "zone-a", Alert(
            alert_type="zone_over_cap", detected_at=T0, zone_id="zone-a", signal_id="s-42",
            observed_kw=52.1, limit_kw=40.0)),
    ]  # fmt: skip

    async def logged(text: str) -> None:
        async with asyncio.timeout(10):
            while text not in captured.getvalue():
                await asyncio.sleep(0.02)

    # One at a time: upsert topics are compacted, so a later record on the same key
    # would replace one not yet read.
    for topic, key, record in records:
        await bus.publish(topic, key, encode(record))
        await asyncio.sleep(0.05)
    await logged("alert zone_over_cap")
    # The engine publishes a tick's commands together: one line for the signal.
    await bus.publish_many([
        Message(topics.SET_CHARGING_PROFILE, f"CP-{i}", encode(SetChargingProfileCommand(
            station_id=f"CP-{i}", target_power_kw=3.5, signal_id="s-42",
            dr_end_ts=T0 + timedelta(minutes=30), command_ts=T0)))
        for i in range(1, 5)
    ])  # fmt: skip
    await logged("enforced")
    await bus.publish(topics.DEMAND_RESPONSE, "s-bad", b"not json")  # skipped, no crash
    await bus.publish_many(
        [Message(topics.SET_CHARGING_PROFILE, f"CP-{i}", None) for i in range(1, 5)]
    )
    await logged("limits cleared")
    await events.stop()
    await bus.stop()
    lines = [line.split(" ", 4)[-1] for line in captured.getvalue().splitlines()]
    assert lines == [
        "station CP-7 connected (OCPP 1.6)",
        "station CP-7 booted: Accepted",
        "signal s-42 received (modification 0): CURTAIL zone-a limit 40 kW, "
        "2026-01-05T12:00:00+00:00 -> 2026-01-05T12:30:00+00:00 (api)",
        "alert zone_over_cap zone zone-a signal s-42: 52.1 kW against 40 kW",
        "signal s-42 enforced: limits sent to 4 station(s) (CP-1, CP-2, CP-3, …)",
        "signal s-42: limits cleared on 4 station(s) (CP-1, CP-2, CP-3, …)",
    ]


def test_library_noise_is_debug_and_a_call_error_is_one_line(captured: io.StringIO) -> None:
    logging.getLogger("websockets.server").info("connection open")
    logging.getLogger("ocpp").info("CP-1: receive message [2, ...]")
    payload = "[2,'1','MeterValues',{" + "x" * 2000 + "}]"
    try:
        raise ValueError("payload failed validation\nwith many\nlines")
    except ValueError:
        logging.getLogger("ocpp").exception("Error while handling request '%s'", payload)
    text = captured.getvalue()
    assert "connection open" not in text and "receive message" not in text
    [line] = text.splitlines()
    assert "Error while handling request" in line
    assert line.endswith("… (ValueError: payload failed validation)")
    assert len(line) < 450


def test_json_lines_carry_the_ids(captured: io.StringIO) -> None:
    setup_logging("INFO", "json")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("gridctl.events").info(
        "station %s connected", "CP-1", extra={"station_id": "CP-1"}
    )
    doc = json.loads(stream.getvalue())
    assert doc["msg"] == "station CP-1 connected" and doc["station_id"] == "CP-1"
    assert doc["level"] == "INFO" and doc["logger"] == "gridctl.events"
    assert datetime.fromisoformat(doc["ts"]).tzinfo is not None


def test_debug_shows_library_lines_again(captured: io.StringIO) -> None:
    setup_logging("DEBUG", "text")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("websockets.server").debug("connection open")
    assert "connection open" in stream.getvalue()
