"""The websocket adapter: moves text between a socket and :class:`OcppProtocol`.

Everything OCPP is decided in the protocol (frames, schemas, message ids) and in the
station (handlers); this module only reads, charges the budget, feeds the protocol, runs
the handler an event names and sends what the protocol has queued. A faster websocket
implementation would replace this file and nothing else.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from websockets.asyncio.server import ServerConnection

from ocpp_gateway.errors import ChargerRefused, StationOffline
from ocpp_gateway.protocol import (
    CallReceived,
    ErrorReceived,
    Ignored,
    OcppProtocol,
    Refused,
    ResultReceived,
)
from ocpp_gateway.station import Refusal, Station

__all__ = ["Connection"]


class Connection:
    """One charger's socket, bound to its protocol state and its station."""

    def __init__(self, ws: ServerConnection, station: Station) -> None:
        config = station.ctx.config
        self.ws = ws
        self.station = station
        self.protocol = OcppProtocol(station.dialect, station.handled(), validate=config.validate)
        self._timeout = config.response_timeout
        self._lock = asyncio.Lock()  # one call of ours at a time (the spec's rule)
        self._answer: asyncio.Future[ResultReceived | ErrorReceived] | None = None
        station.link = self

    async def run(self) -> None:
        """Read frames until the socket closes (raises ``ConnectionClosed`` then).

        Each frame is charged to the station's budget before it is parsed: over budget,
        the next read waits (the charger is slowed, TCP pushes back); still over after
        ``budget_disconnect_s``, the connection is closed with 1008.
        """
        protocol, station, budget = self.protocol, self.station, self.station.budget
        try:
            while True:
                message = await self.ws.recv()
                now = time.monotonic()
                wait = budget.charge(len(message), now)
                if wait > 0.0:
                    await self._slow_down(wait, now)
                event = protocol.receive(message)
                if type(event) is CallReceived:
                    answer = await station.handle(event.action, event.payload)
                    if type(answer) is Refusal:
                        protocol.send_error(event.unique_id, answer.code, answer.description)
                        await self._flush()
                    else:
                        protocol.send_result(event.unique_id, answer)  # type: ignore[arg-type]
                        await self._flush()
                        station.answered(event.action, event.payload)
                elif type(event) is Refused:
                    station.warn.warning("%s %s refused: %s: %s", event.action or "frame",
                                         event.unique_id, event.code, event.reason)  # fmt: skip
                    station.ctx.metrics.frame_errors.labels(event.code).inc()
                    await self._flush()
                elif type(event) is Ignored:
                    station.warn.warning("unexpected answer %s ignored", event.unique_id)
                elif self._answer is not None and not self._answer.done():
                    self._answer.set_result(event)  # type: ignore[arg-type]
                # Not kept while the next frame is awaited (~10 s for a charger sampling
                # every 10 s): the text and its parsed payload are ~3 KB per connection.
                message = event = answer = None  # type: ignore[assignment]
        finally:
            if self._answer is not None and not self._answer.done():
                self._answer.set_exception(
                    StationOffline(f"station {station.id} disconnected before answering")
                )

    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send our call; the answer's payload, or ``ChargerRefused`` / ``TimeoutError`` /
        ``StationOffline`` (at once when the socket closes, not after the timeout)."""
        async with self._lock:
            if self.ws.close_code is not None:
                raise StationOffline(f"station {self.station.id} is disconnected")
            unique_id = self.protocol.send_call(action, payload)
            self._answer = answer = asyncio.get_running_loop().create_future()
            try:
                await self._flush()
                async with asyncio.timeout(self._timeout):
                    event = await answer
            except BaseException:
                # Timed out, or the waiting task was cancelled (a capability query raced
                # by a delivery, a shutdown): stop waiting, or every later call of ours on
                # this connection would meet CallPending.
                self.protocol.abandon(unique_id)
                raise
            finally:
                self._answer = None
        if type(event) is ErrorReceived:
            raise ChargerRefused(event.code, event.description)
        return event.payload

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    async def _flush(self) -> None:
        for text in self.protocol.data_to_send():
            await self.ws.send(text)

    async def _slow_down(self, wait: float, now: float) -> None:
        station = self.station
        config = station.ctx.config
        if station.budget.flooding(now):
            station.ctx.metrics.budget.labels("disconnected").inc()
            reason = (
                f"over budget for {config.budget_disconnect_s:g} s "
                f"({config.budget_msgs_per_s:g} msgs/s, {config.budget_bytes_per_s:g} bytes/s)"
            )
            station.warn.warning("closed (1008): %s", reason)
            try:
                # A flooder's close answer queues behind everything it already sent: give
                # it a second, not the whole close timeout, then drop the TCP connection.
                async with asyncio.timeout(1.0):
                    await self.ws.close(1008, reason)
            except TimeoutError:
                self.ws.transport.abort()
            return  # the next recv() raises ConnectionClosed
        station.ctx.metrics.budget.labels("slowed").inc()
        if station.budget.throttled_since == now:  # the first wait of a run
            station.warn.warning("over its budget, slowed down")
        await asyncio.sleep(wait)
