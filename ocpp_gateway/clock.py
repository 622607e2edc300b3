"""The gateway's clock on the command-result topic: acknowledgement windows close on time.

Both engines close an EMIT ON WINDOW CLOSE window when the source's watermark passes its
end, and a watermark moves only when records arrive. Command results are sparse (a burst
when a signal starts, then nothing): the last window of an event would close only when the
next event's results arrive, so a low acknowledgement rate was reported late or never.
The gateway owns the pipeline's time, so it publishes a clock record on
``ocpp.command_results`` every ``interval`` seconds: ``signal_id`` null (no ack window
counts it), ``action`` ``"Clock"``, both timestamps the gateway's now. RisingWave's idle
actors take the global watermark at each checkpoint, so one record reaches every window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from pipeline import topics
from pipeline.bus.base import Bus, BusError
from pipeline.contracts import CommandResult, encode

__all__ = ["CLOCK_ACTION", "CLOCK_STATION", "ResultClock", "clock_record", "now_utc"]

log = logging.getLogger(__name__)

#: the station id of clock records; readers tell them by the action (a charger could be
#: named so; it has no zone unless an operator gives it one)
CLOCK_STATION = "gridctl-clock"
CLOCK_ACTION = "Clock"


def clock_record(now: datetime) -> CommandResult:
    return CommandResult(
        station_id=CLOCK_STATION,
        signal_id=None,
        action=CLOCK_ACTION,
        status="Accepted",
        sent_ts=now,
        result_ts=now,
    )


class ResultClock:
    """Publish a clock record every ``interval`` seconds until stopped."""

    def __init__(self, bus: Bus, interval: float) -> None:
        self.bus = bus
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-result-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            record = clock_record(datetime.now(UTC))
            try:
                await self.bus.publish(topics.COMMAND_RESULTS, CLOCK_STATION, encode(record))
            except BusError as exc:
                log.warning("clock record not published (%r); windows close on the next", exc)
            await asyncio.sleep(self.interval)


def now_utc() -> datetime:
    """Now, timezone-aware UTC: how every gateway module stamps records and decisions."""
    return datetime.now(UTC)
