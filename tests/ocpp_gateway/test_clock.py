"""The gateway's result clock: a record per interval, counted by no ack window."""

from __future__ import annotations

from ocpp_gateway.clock import CLOCK_ACTION, ResultClock
from pipeline import topics
from pipeline.bus.local import LocalBus
from pipeline.contracts import CommandResult, decode


async def test_clock_records_on_the_command_result_topic() -> None:
    bus = LocalBus()
    await bus.start()
    sub = bus.subscribe([topics.COMMAND_RESULTS])
    clock = ResultClock(bus, interval=0.05)
    clock.start()
    try:
        got: list = []
        while len(got) < 2:
            got += await sub.batch(10, timeout=1.0)
    finally:
        await clock.stop()
        await bus.stop()
    records = [decode(CommandResult, r.value, topic=topics.COMMAND_RESULTS) for r in got]
    assert all(r.signal_id is None and r.action == CLOCK_ACTION for r in records)
    assert records[0].result_ts <= records[1].result_ts
    assert records[0].result_ts.tzinfo is not None
