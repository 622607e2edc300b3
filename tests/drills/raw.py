"""Light OCPP 1.6 chargers for the drills: every reading has an identity and a fate.

The simulator's chargers (:mod:`simulator`) are the right peer when physics matter; here
what matters is bookkeeping at thousands of connections: which reading was sent, which
got a CallResult, which got a CallError and was retried, which profile arrived when. So
each :class:`MeterCharger` speaks raw websocket frames (``bench/gateway_throughput``'s
``RawWS``, cheap enough for 2,000 in the test process) and behaves like a careful
charger: a reading stays queued until the central system acknowledges it and is sent
again (same timestamp) after a CallError, a timeout or a reconnect. A reading is
identified by its station and its timestamp, as the drills look for it on the bus.
Calls from the central system (SetChargingProfile, ClearChargingProfile, ...) are
answered ``Accepted`` at once by a reader task and recorded with their arrival time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from bench._common import pct
from bench.gateway_throughput import RawWS

Reading = tuple[str, datetime]  # (station_id, event_ts)
_CONNECT_ERRORS = (OSError, TimeoutError, RuntimeError, asyncio.IncompleteReadError)
_LINK_ERRORS = (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError)


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
    connect_failures: Counter[str] = field(default_factory=Counter)  # reason -> count
    ack_ms: list[float] = field(default_factory=list)
    server_calls: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"readings created {self.created}, frames sent {self.sent}, acked {len(self.acked)}, "
            f"CallErrors {dict(self.call_errors)}, timeouts {self.timeouts}, "
            f"connects {self.connects} (failed {dict(self.connect_failures)}), disconnects "
            f"{self.disconnects}, calls from gridctl {dict(self.server_calls)}, ack p50 "
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


async def connect(port: int, station: str, password: str | None) -> RawWS:
    """``RawWS.connect`` with Basic auth (the bench client has none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    auth = ""
    if password is not None:
        token = base64.b64encode(f"{station}:{password}".encode()).decode()
        auth = f"Authorization: Basic {token}\r\n"
    writer.write(
        (
            f"GET /ocpp/{station} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ocpp1.6\r\n{auth}\r\n"
        ).encode()
    )
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except BaseException:
        writer.close()
        raise
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        writer.close()
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return RawWS(reader, writer)


@dataclass(slots=True)
class Received:
    """A call gridctl made to a charger, as the charger received it."""

    action: str
    at: float  # POSIX seconds
    payload: dict[str, Any]


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
        password: str | None = None,
        boot: bool = False,
        watts: float = 7000.0,
        answer_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        retry_delay: float = 0.5,
    ) -> None:
        self.port = port
        self.id = station_id
        self.ledger = ledger
        self.stop = stop
        self.interval = interval
        self.password = password
        self.boot = boot
        self.watts = watts
        self.answer_timeout = answer_timeout
        self.connect_timeout = connect_timeout
        self.retry_delay = retry_delay
        self.queue: deque[datetime] = deque()
        self.received: list[Received] = []
        self.connected_at: float | None = None  # POSIX time the last connection booted
        self.online = False
        self.in_flight = False  # a frame sent, its answer not read yet
        self._last = datetime.now(UTC) - timedelta(seconds=1)
        self._seq = 0
        self._ws: RawWS | None = None
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}

    def _new_reading(self) -> None:
        now = datetime.now(UTC)
        ts = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if ts <= self._last:
            ts = self._last + timedelta(milliseconds=1)
        self._last = ts
        self.queue.append(ts)
        self.ledger.created += 1

    def drop_link(self) -> None:
        """Cut the connection now (a network blip); ``run`` reconnects."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.writer.transport.abort()

    async def call(self, action: str, body: dict[str, Any]) -> list[Any]:
        """Send one call and return the answer frame (CallResult or CallError)."""
        ws = self._ws
        if ws is None or (self._reader.done() and action != "BootNotification"):
            raise ConnectionError("not connected")
        self._seq += 1
        uid = f"{self._seq}"
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting[uid] = fut
        try:
            await ws.send(json.dumps([2, uid, action, body]))
            self.ledger.sent += 1
            return await asyncio.wait_for(fut, self.answer_timeout)
        finally:
            self._waiting.pop(uid, None)

    async def _read(self, ws: RawWS) -> None:
        """Answer gridctl's calls at once; hand answers to the waiting call."""
        try:
            while True:
                message = json.loads(await ws.recv())
                if message[0] == 2:
                    self.ledger.server_calls[message[2]] += 1
                    self.received.append(Received(message[2], time.time(), message[3]))
                    await ws.send(json.dumps([3, message[1], {"status": "Accepted"}]))
                    continue
                fut = self._waiting.get(str(message[1]))
                if fut is not None and not fut.done():
                    fut.set_result(message)
        except _LINK_ERRORS as exc:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(str(exc) or type(exc).__name__))

    async def _open(self) -> bool:
        try:
            ws = await asyncio.wait_for(
                connect(self.port, self.id, self.password), self.connect_timeout
            )
        except _CONNECT_ERRORS as exc:
            reason = str(exc)[:40] if isinstance(exc, RuntimeError) else type(exc).__name__
            self.ledger.connect_failures[reason] += 1
            return False
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))
        self.ledger.connects += 1
        if self.boot:
            try:
                answer = await self.call(
                    "BootNotification", {"chargePointVendor": "drill", "chargePointModel": "raw"}
                )
            except (TimeoutError, *_LINK_ERRORS):
                await self._close()
                return False
            if answer[0] != 3 or answer[2].get("status") != "Accepted":
                await self._close()
                return False
        self.connected_at = time.time()
        self.online = True
        return True

    async def _close(self) -> None:
        self.online = False
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.writer.transport.abort()
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    async def run(self) -> None:
        # A random phase, so that a fleet's frames are spread over the interval and a
        # fault at any moment catches some of them in flight.
        next_reading = time.monotonic() + random.uniform(0, self.interval)
        try:
            while not self.stop.is_set():
                if self._ws is None or self._reader.done():
                    if self._ws is not None:
                        self.ledger.disconnects += 1
                        await self._close()
                    if not await self._open():
                        await self._pause(0.3 + random.random() * 0.4)
                    continue
                now = time.monotonic()
                if now >= next_reading:
                    self._new_reading()
                    next_reading = max(next_reading + self.interval, now)
                if not self.queue:
                    await self._pause(next_reading - now)
                    continue
                ts = self.queue[0]
                t0 = time.perf_counter()
                self.in_flight = True
                try:
                    answer = await self.call("MeterValues", payload(ts, self.watts))
                except TimeoutError:
                    self.ledger.timeouts += 1
                    await self._close()
                    continue
                except _LINK_ERRORS:
                    continue  # the reader saw the link go; the loop reconnects
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
            await self._close()

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), seconds)

    def profiles(self, since: float = 0.0) -> list[Received]:
        return [r for r in self.received if r.action == "SetChargingProfile" and r.at >= since]


def stations(
    count: int, station_id: Callable[[int], str], zone_id: Callable[[int], str]
) -> list[SimpleNamespace]:
    """``count`` identical 11 kW three-phase stations, as ``import_stations`` takes them."""
    return [
        SimpleNamespace(
            station_id=station_id(i),
            zone_id=zone_id(i),
            max_station_kw=11.0,
            contract_max_kw=11.0,
            min_active_kw=1.4,
            charging_rate_unit="W",
            phases=3,
            voltage_v=230.0,
        )
        for i in range(count)
    ]


async def run_fleet(
    chargers: list[MeterCharger], connect_rate: float | None = 500.0
) -> list[asyncio.Task[None]]:
    """Start chargers at ``connect_rate`` per second (``None``: all at once)."""
    tasks = []
    for i, charger in enumerate(chargers):
        tasks.append(asyncio.create_task(charger.run(), name=f"drill-{charger.id}"))
        if connect_rate and i % 50 == 49:
            await asyncio.sleep(50 / connect_rate)
    return tasks


async def wait_for(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` s; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


async def finish(tasks: list[asyncio.Task[None]], timeout: float = 20.0) -> None:
    """Wait for stopped chargers; cancel stragglers."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
