"""Which gateway worker holds each station, as ``ocpp.station_status`` says.

With ``gridctl run --gateway-workers N`` a station not connected to this worker may be
connected to another one: "not here" is not "offline". Every worker publishes
``Connected`` / ``Disconnected`` with its name (``gateway``) on the status topic, so one
worker (the one that reports offline results) follows that topic and reports a station
offline only when no worker's latest word is that it holds it.

A ``Disconnected`` counts only from the worker the station was last ``Connected`` to:
a charger that reconnects through another worker before the old connection's close is
noticed must not be marked gone by the late close.
"""

from __future__ import annotations

import asyncio
import contextlib

from ocpp_gateway.topic_reader import follow, read_to_end
from pipeline import topics
from pipeline.bus import Bus, Record, Subscription
from pipeline.contracts import ContractError, StationStatus, decode

__all__ = ["Presence"]


class Presence:
    """Station -> the worker its latest ``Connected`` came from (until that worker's
    ``Disconnected``)."""

    def __init__(self, bus: Bus, me: str, startup_read_s: float) -> None:
        self.bus = bus
        self.me = me
        self.startup_read_s = startup_read_s
        self.holders: dict[str, str] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def held_elsewhere(self, station_id: str) -> bool:
        holder = self.holders.get(station_id)
        return holder is not None and holder != self.me

    async def start(self) -> None:
        self._sub = self.bus.subscribe([topics.STATION_STATUS], group=None)
        await read_to_end(self._sub, self.fold, self.bus, self.startup_read_s)
        self._task = asyncio.create_task(
            follow(self._sub, self.fold, what="station status"), name="gateway-presence"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            await self._sub.close()

    def fold(self, record: Record) -> None:
        if record.value is None or record.key is None:
            return
        try:
            status = decode(StationStatus, record.value, topic=record.topic)
        except ContractError:
            return  # the engine's ingest reports bad status records; nothing to hold here
        if status.gateway is None:
            return
        if status.event == "Connected":
            self.holders[status.station_id] = status.gateway
        elif status.event == "Disconnected" and self.holders.get(status.station_id) == (
            status.gateway
        ):
            del self.holders[status.station_id]
