"""One log line per event an operator cares about, read off the bus.

The gateway, the bridge and the engine each know part of a story (a station connected, a
signal arrived, limits went out, a signal ended); the bus carries all of it. This reader
follows the event topics from now on (no group, no history) and writes one INFO line per
event with the station or signal id, so that the log reads as what happened:

    station CP-7 connected (OCPP 1.6)      station CP-7 booted: Accepted
    signal s-42 received (modification 0): CURTAIL zone-a limit 40 kW, 12:00 -> 12:30 (api)
    signal s-42 enforced: limits for 12 station(s) (CP-1, CP-2, CP-3, …)
    signal s-42 ended (RESTORE, modification 1)      limits cleared on 12 station(s)
    alert zone_over_cap zone zone-a signal s-42: 52.1 kW against 40 kW

Per-station limit lines are at DEBUG. Command results are logged by the gateway itself;
refusals too. A record that does not decode is skipped (the engine counts those).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from pipeline import topics
from pipeline.bus import Bus, BusClosed, BusError, Record, Subscription
from pipeline.contracts import (
    Alert,
    ContractError,
    DemandResponseSignal,
    SetChargingProfileCommand,
    StationStatus,
    decode,
)

log = logging.getLogger("gridctl.events")

TOPICS = (
    topics.STATION_STATUS,
    topics.DEMAND_RESPONSE,
    topics.SET_CHARGING_PROFILE,
    topics.ALERTS_OVERLOAD,
    topics.ALERTS_DR,
)
NAMED = 3  # station ids named in a per-signal line


def _amount(s: DemandResponseSignal) -> str:
    if s.zone_limit_kw is not None:
        return f"limit {s.zone_limit_kw:g} kW"
    if s.target_reduction_kw is not None:
        return f"-{s.target_reduction_kw:g} kW"
    if s.target_reduction_pct is not None:
        return f"-{s.target_reduction_pct:g} %"
    return ""


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:NAMED])
    return shown + (", …" if len(ids) > NAMED else "")


class EventLog:
    """``await start()`` subscribes at the end of each topic; ``await stop()``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        #: station -> the signal its current limit belongs to (to name what a clear ends)
        self._limited: dict[str, str] = {}

    async def start(self) -> None:
        self._sub = self._bus.subscribe(list(TOPICS), group=None, from_beginning=False)
        self._task = asyncio.create_task(self._follow(), name="gridctl-event-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(BusError):
                await self._sub.close()

    async def _follow(self) -> None:
        assert self._sub is not None
        while True:
            try:
                records = await self._sub.batch(max_records=5000, timeout=1.0)
            except BusClosed:
                return
            except BusError as exc:
                log.debug("event log: bus unreadable: %r", exc)
                await asyncio.sleep(1.0)
                continue
            self.handle(records)

    def handle(self, records: list[Record]) -> None:
        """Write the lines for one batch (commands are summed per signal)."""
        limits: dict[str, list[str]] = defaultdict(list)
        cleared: dict[str, list[str]] = defaultdict(list)
        for r in records:
            try:
                if r.topic.endswith(topics.SET_CHARGING_PROFILE):
                    self._command(r, limits, cleared)
                elif r.value is None:
                    continue
                elif r.topic.endswith(topics.STATION_STATUS):
                    self._status(decode(StationStatus, r.value, topic=r.topic))
                elif r.topic.endswith(topics.DEMAND_RESPONSE):
                    self._signal(decode(DemandResponseSignal, r.value, topic=r.topic))
                else:
                    self._alert(decode(Alert, r.value, topic=r.topic))
            except ContractError:
                continue
        for signal_id, stations in limits.items():
            log.info(
                "signal %s enforced: limits sent to %d station(s) (%s)",
                signal_id, len(stations), _ids(stations), extra={"signal_id": signal_id},
            )  # fmt: skip
        for signal_id, stations in cleared.items():
            log.info(
                "signal %s: limits cleared on %d station(s) (%s)",
                signal_id, len(stations), _ids(stations), extra={"signal_id": signal_id},
            )  # fmt: skip

    def _command(
        self, r: Record, limits: dict[str, list[str]], cleared: dict[str, list[str]]
    ) -> None:
        station = r.key or ""
        if r.value is None:
            cleared[self._limited.pop(station, "-")].append(station)
            log.debug("station %s: limit cleared", station, extra={"station_id": station})
            return
        c = decode(SetChargingProfileCommand, r.value, topic=r.topic)
        self._limited[c.station_id] = c.signal_id
        limits[c.signal_id].append(c.station_id)
        log.debug(
            "station %s: limit %g kW for signal %s until %s",
            c.station_id, c.target_power_kw, c.signal_id, c.dr_end_ts.isoformat(),
            extra={"station_id": c.station_id, "signal_id": c.signal_id},
        )  # fmt: skip

    def _status(self, s: StationStatus) -> None:
        extra = {"station_id": s.station_id}
        if s.event == "Connected":
            log.info("station %s connected (OCPP %s)", s.station_id, s.ocpp_version, extra=extra)
        elif s.event == "Disconnected":
            log.info("station %s disconnected", s.station_id, extra=extra)
        elif s.event == "BootNotification":
            log.info("station %s booted: %s", s.station_id, s.status, extra=extra)
        elif s.error_code and s.error_code != "NoError":
            log.info(
                "station %s connector %s: %s (%s)",
                s.station_id, s.connector_id, s.status, s.error_code, extra=extra,
            )  # fmt: skip
        else:
            log.debug("station %s connector %s: %s", s.station_id, s.connector_id, s.status)

    def _signal(self, s: DemandResponseSignal) -> None:
        extra = {"signal_id": s.signal_id, "zone_id": s.zone_id}
        if s.signal_type == "RESTORE":
            log.info(
                "signal %s ended (RESTORE, modification %d)",
                s.signal_id, s.modification, extra=extra,
            )  # fmt: skip
            return
        log.info(
            "signal %s received (modification %d): %s %s %s, %s -> %s (%s)",
            s.signal_id, s.modification, s.signal_type, s.zone_id, _amount(s),
            s.start_ts.isoformat(timespec="seconds"), s.end_ts.isoformat(timespec="seconds"),
            s.source, extra=extra,
        )  # fmt: skip

    def _alert(self, a: Alert) -> None:
        where = " ".join(
            f"{k} {v}"
            for k, v in (("zone", a.zone_id), ("station", a.station_id), ("signal", a.signal_id))
            if v
        )
        figures = ""
        if a.observed_kw is not None and a.limit_kw is not None:
            figures = f": {a.observed_kw:g} kW against {a.limit_kw:g} kW"
        elif a.ack_rate is not None:
            figures = f": acknowledgement rate {a.ack_rate:.0%}"
        log.warning(
            "alert %s %s%s", a.alert_type, where, figures,
            extra={"station_id": a.station_id, "signal_id": a.signal_id, "zone_id": a.zone_id},
        )  # fmt: skip
