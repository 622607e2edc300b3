"""Known zones and stations, learned from ``config.station_zones``.

The API refuses a signal for a zone nobody configured, and the OpenADR VENs map
``resource_id`` targets (station ids) to their zone, so both need the station table.
It lives on the bus (an upsert topic), not in a file: this directory subscribes from
the beginning, replays the latest value per station, then follows changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dr_bridge.follow import TopicFollower
from dr_bridge.oadr2_map import ZoneView
from pipeline import topics
from pipeline.bus import Bus, Record
from pipeline.contracts import ContractError, StationZone, decode

log = logging.getLogger(__name__)


class ZoneDirectory(TopicFollower):
    """Station -> zone, kept current from the bus; ``extra_zones`` are always known."""

    topic = topics.STATION_ZONES
    name = "dr-zones"

    def __init__(self, bus: Bus, extra_zones: Sequence[str] = ()) -> None:
        super().__init__(bus)
        self._extra = frozenset(extra_zones)
        self._stations: dict[str, StationZone] = {}

    def _apply_records(self, records: list[Record]) -> None:
        for record in records:
            if record.value is None:
                self._stations.pop(record.key or "", None)
                continue
            try:
                self.put(decode(StationZone, record.value, topic=topics.STATION_ZONES))
            except ContractError as exc:
                log.warning("ignoring bad station record %s: %s", record.key, exc)

    def put(self, station: StationZone) -> None:
        """Record a station now (the API calls this right after publishing it)."""
        self._stations[station.station_id] = station

    # -- lookups -----------------------------------------------------------------------
    def zones(self) -> frozenset[str]:
        return self._extra | {s.zone_id for s in self._stations.values()}

    def is_zone(self, zone_id: str) -> bool:
        return zone_id in self._extra or any(s.zone_id == zone_id for s in self._stations.values())

    def zone_of(self, station_id: str) -> str | None:
        station = self._stations.get(station_id)
        return None if station is None else station.zone_id

    def capacity_kw(self, zone_id: str) -> float | None:
        """What the zone's stations can draw together (min of hardware and contract per
        station, as ``zone_load.capacity_kw``); None for a zone without stations."""
        caps = [
            min(s.max_station_kw, s.contract_max_kw)
            for s in self._stations.values()
            if s.zone_id == zone_id
        ]
        return sum(caps) if caps else None

    def floor_kw(self, zone_id: str) -> float:
        """The least the zone draws under CURTAIL with every station charging: Σ of each
        station's min_active_kw (within its limits), as the engine's floors."""
        return sum(
            min(s.min_active_kw or 0.0, s.max_station_kw, s.contract_max_kw)
            for s in self._stations.values()
            if s.zone_id == zone_id
        )

    def view(self) -> ZoneView:
        """What the OpenADR mappings need, as plain callables (they stay pure)."""
        return ZoneView(self.is_zone, self.zone_of, self.zones, self.capacity_kw, self.floor_kw)

    def stations(self) -> list[StationZone]:
        return sorted(self._stations.values(), key=lambda s: s.station_id)
