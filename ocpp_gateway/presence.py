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

from pipeline import topics
from pipeline.bus import Bus, Record
from pipeline.bus.follow import TopicFollower
from pipeline.contracts import ContractError, StationStatus, decode

__all__ = ["Presence"]


class Presence(TopicFollower):
    """Station -> the worker its latest ``Connected`` came from (until that worker's
    ``Disconnected``)."""

    topic = topics.STATION_STATUS
    name = "gateway-presence"

    def __init__(self, bus: Bus, me: str, startup_read_s: float) -> None:
        super().__init__(bus)
        self.me = me
        self.first_wait = startup_read_s
        self.holders: dict[str, str] = {}

    def held_elsewhere(self, station_id: str) -> bool:
        holder = self.holders.get(station_id)
        return holder is not None and holder != self.me

    def _apply_records(self, records: list[Record]) -> None:
        for record in records:
            self.fold(record)

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
