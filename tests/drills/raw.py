"""Light OCPP 1.6 chargers for the drills: every reading has an identity and a fate.

The simulator's chargers (:mod:`simulator`) are the right peer when physics and profiles
matter; here what matters is bookkeeping at thousands of connections: which reading was
sent, which got a CallResult, which got a CallError and was retried. So each
:class:`MeterCharger` speaks raw websocket frames (``bench/gateway_throughput.RawWS``,
cheap enough for 1,000 in the test process) and behaves like a careful charger: a reading
stays queued until the central system acknowledges it, and is sent again (same timestamp)
after a CallError, a timeout or a reconnect. A reading is identified by its station and
its timestamp, as the drills look for it on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench._common import pct
from bench.gateway_throughput import RawWS

Reading = tuple[str, datetime]  # (station_id, event_ts)


@dataclass
class Ledger:
    """What a group of chargers sent and what the central system answered."""

    sent: int = 0  # frames sent (first attempts and retries)
    created: int = 0  # distinct readings created
    acked: set[Reading] = field(default_factory=set)
    call_errors: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    disconnects: int = 0
    connects: int = 0
    ack_ms: list[float] = field(default_factory=list)
    server_calls: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"readings created {self.created}, frames sent {self.sent}, acked {len(self.acked)}, "
            f"CallErrors {dict(self.call_errors)}, timeouts {self.timeouts}, "
            f"connects {self.connects}, disconnects {self.disconnects}, ack p50 "
            f"{pct(self.ack_ms, 50):.1f} ms p99 {pct(self.ack_ms, 99):.1f} ms"
        )


def payload(ts: datetime, watts: float = 7000.0) -> dict[str, object]:
    stamp = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": stamp,
                "sampledValue": [
                    {"value": f"{watts:.1f}", "measurand": "Power.Active.Import", "unit": "W"}
                ],
            }
        ],
    }


class MeterCharger:
    """One charger: a reading every ``interval`` s, queued until acknowledged."""

    def __init__(
        self,
        port: int,
        station_id: str,
        ledger: Ledger,
        stop: asyncio.Event,
        *,
        interval: float = 1.0,
        answer_timeout: float = 10.0,
        retry_delay: float = 0.5,
    ) -> None:
        self.port = port
        self.id = station_id
        self.ledger = ledger
        self.stop = stop
        self.interval = interval
        self.answer_timeout = answer_timeout
        self.retry_delay = retry_delay
        self.queue: deque[datetime] = deque()
        self._last = datetime.now(UTC) - timedelta(seconds=1)
        self._seq = 0
        self.in_flight = False  # a frame sent, its answer not read yet

    def _new_reading(self) -> None:
        now = datetime.now(UTC)
        ts = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if ts <= self._last:
            ts = self._last + timedelta(milliseconds=1)
        self._last = ts
        self.queue.append(ts)
        self.ledger.created += 1

    async def run(self) -> None:
        ws: RawWS | None = None
        # A random phase, so that a fleet's frames are spread over the interval and a
        # fault at any moment catches some of them in flight.
        next_reading = time.monotonic() + random.uniform(0, self.interval)
        try:
            while not self.stop.is_set():
                if ws is None:
                    try:
                        ws = await asyncio.wait_for(RawWS.connect(self.port, self.id), 10.0)
                        self.ledger.connects += 1
                    except (OSError, TimeoutError, RuntimeError, asyncio.IncompleteReadError):
                        await self._pause(0.3)
                        continue
                now = time.monotonic()
                if now >= next_reading:
                    self._new_reading()
                    next_reading = max(next_reading + self.interval, now)
                if not self.queue:
                    await self._pause(next_reading - now)
                    continue
                ts = self.queue[0]
                self._seq += 1
                frame = json.dumps([2, f"{self._seq}", "MeterValues", payload(ts)])
                t0 = time.perf_counter()
                try:
                    self.in_flight = True
                    await ws.send(frame)
                    self.ledger.sent += 1
                    answer = await asyncio.wait_for(self._answer(ws), self.answer_timeout)
                except TimeoutError:
                    self.ledger.timeouts += 1
                    await self._drop(ws)
                    ws = None
                    continue
                except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                    self.ledger.disconnects += 1
                    await self._drop(ws)
                    ws = None
                    continue
                finally:
                    self.in_flight = False
                if answer[0] == 3:
                    self.ledger.ack_ms.append((time.perf_counter() - t0) * 1000)
                    self.ledger.acked.add((self.id, ts))
                    self.queue.popleft()
                else:
                    self.ledger.call_errors[str(answer[2])] += 1
                    await self._pause(self.retry_delay)
        finally:
            if ws is not None:
                await ws.close()

    async def _answer(self, ws: RawWS) -> list:
        """The answer to our call; calls from the central system are accepted meanwhile."""
        while True:
            message = json.loads(await ws.recv())
            if message[0] != 2:
                return message
            self.ledger.server_calls[message[2]] += 1
            self.on_call(message[2], message[3])
            await ws.send(json.dumps([3, message[1], {"status": "Accepted"}]))

    def on_call(self, action: str, payload: dict) -> None:
        """A call from the central system (SetChargingProfile, ...); subclasses look."""

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), seconds)

    @staticmethod
    async def _drop(ws: RawWS) -> None:
        with contextlib.suppress(Exception):
            ws.writer.close()


async def run_fleet(
    chargers: list[MeterCharger], connect_rate: float = 500.0
) -> list[asyncio.Task]:
    """Start chargers at ``connect_rate`` per second; returns their tasks."""
    tasks = []
    for i, charger in enumerate(chargers):
        tasks.append(asyncio.create_task(charger.run(), name=f"drill-{charger.id}"))
        if i % 50 == 49:
            await asyncio.sleep(50 / connect_rate)
    return tasks


async def wait_for(predicate: object, timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` s; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(step)
    return bool(predicate())  # type: ignore[operator]


async def finish(tasks: list[asyncio.Task], timeout: float = 20.0) -> None:
    """Wait for stopped chargers; cancel stragglers."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
