"""Command delivery: the desired limit of each station, applied to the chargers held here.

Reads ``ocpp.commands.set_charging_profile`` without a group from the beginning, so every
gateway instance rebuilds the full desired state when it starts (the topic is an upsert
topic: one latest record per station). Each instance applies commands only to stations
connected to it; a station that connects later gets its state after BootNotification (or
its first message on a reconnect without one).

Per station, one worker at a time talks to the charger (OCPP allows one outstanding call),
and always applies the *latest* desired state, so a burst of updates costs one call. What
to send (the deadband and change interval of docs/control-law.md §6, purpose fallback,
status mapping) is :mod:`ocpp_gateway.policy`'s decision; this module carries it out,
including the retry of a raise the change interval held back. Every attempt is published
to ``ocpp.command_results``; the log counts them once per ``outcome_log_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from ocpp_gateway import policy
from ocpp_gateway.auth import StationRegistry
from ocpp_gateway.clock import now_utc
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.dialect import Dialect
from ocpp_gateway.errors import ChargerRefused, StationOffline
from ocpp_gateway.metrics import GatewayMetrics
from ocpp_gateway.outcomes import Outcomes
from ocpp_gateway.profiles import Capabilities
from pipeline import topics
from pipeline.bus import Bus, BusError, Record, Subscription
from pipeline.bus.follow import follow, read_to_end
from pipeline.contracts import (
    CommandResult,
    ContractError,
    SetChargingProfileCommand,
    decode,
    encode,
)

__all__ = ["CommandDelivery", "Target"]

log = logging.getLogger("ocpp_gateway.commands")


def station_key(key: str | None) -> str | None:
    """The station id of a command record's key.

    Our sinks write the bare id (``KEY ENCODE TEXT``); a RisingWave UPSERT sink created
    without it writes ``{"station_id": "..."}``. Accept both, so a sink someone recreated
    without the clause still drives the right charger (and its tombstones still clear).
    """
    if key is None or not key.startswith("{"):
        return key
    try:
        value = json.loads(key).get("station_id")
    except (ValueError, AttributeError):
        return key
    return str(value) if value is not None else key


class Target(Protocol):
    """What delivery needs of a connected station (a :class:`~.station.Station`)."""

    id: str
    dialect: Dialect
    reconciled: bool  # False until the charger spoke on this connection

    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    async def capabilities(self) -> Capabilities: ...


class Holders(Protocol):
    """Which other gateway workers hold stations (:class:`~.presence.Presence`)."""

    def held_elsewhere(self, station_id: str) -> bool: ...


_now = now_utc


class CommandDelivery:
    """Desired state per station and the workers that apply it."""

    def __init__(
        self, bus: Bus, config: GatewayConfig, metrics: GatewayMetrics, registry: StationRegistry
    ) -> None:
        self.bus = bus
        self.config = config
        self.metrics = metrics
        self.registry = registry
        #: station -> latest command, or None after a tombstone
        self.desired: dict[str, SetChargingProfileCommand | None] = {}
        self.stations: dict[str, Target] = {}
        self.rules = policy.Rules(
            config.threshold_kw, config.deadband_pct, config.min_interval_s,
            config.change_interval_s,
        )  # fmt: skip
        self._memory: dict[str, policy.Memory] = {}
        self._pending: dict[str, bool] = {}  # station -> forced
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._sub: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None
        self._caught_up = False
        self._spawned: set[asyncio.Task[Any]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        #: set when other workers share the port: a station they hold is not offline
        self.holders: Holders | None = None
        self.outcomes = Outcomes()
        self._outcome_log: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Rebuild desired state from the topic, then follow it in the background."""
        self._sub = self.bus.subscribe([topics.SET_CHARGING_PROFILE], group=None)
        await read_to_end(self._sub, self._fold_all, self.bus, self.config.startup_read_s)
        self._caught_up = True
        self._reader = asyncio.create_task(
            follow(self._sub, self._follow_batch, what="command topic", timeout=0.5),
            name="commands-reader",
        )
        self._outcome_log = asyncio.create_task(self._log_outcomes(), name="commands-log")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [
            t
            for t in (self._reader, self._outcome_log, *self._workers.values(), *self._spawned)
            if t
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sub is not None:
            await self._sub.close()
        self._say_outcomes()

    async def _log_outcomes(self) -> None:
        while True:
            await asyncio.sleep(self.config.outcome_log_s)
            self._say_outcomes()

    def _say_outcomes(self) -> None:
        line = self.outcomes.take()
        if line is not None:
            every = self.config.outcome_log_s
            log.info("commands answered (counted every %g s): %s", every, line)

    def _follow_batch(self, records: list[Record]) -> None:
        for record in records:
            station_id = self._fold(record)
            if station_id is None:
                continue
            if station_id in self.stations:
                self.kick(station_id)
            elif self.config.report_offline and self.desired.get(station_id) is not None:
                self._spawn(self._offline_unless_held(station_id))

    def _fold_all(self, records: list[Record]) -> None:
        for record in records:
            self._fold(record)

    def _fold(self, record: Record) -> str | None:
        station_id = station_key(record.key)
        if station_id is None:
            return None
        if record.value is None:
            self.desired[station_id] = None
            return station_id
        try:
            cmd = decode(SetChargingProfileCommand, record.value, topic=record.topic)
        except ContractError as exc:
            log.warning("skipping bad command for %s: %s", station_id, exc)
            return None
        self.desired[station_id] = cmd
        return station_id

    # -- stations --------------------------------------------------------------------
    def attach(self, station: Target) -> None:
        self.stations[station.id] = station

    def detach(self, station: Target) -> None:
        if self.stations.get(station.id) is station:
            del self.stations[station.id]

    async def reconcile(self, station: Target) -> None:
        """Called once per connection after BootNotification: push the desired state."""
        if station.id in self.desired:
            self.kick(station.id, force=True)

    def kick(self, station_id: str, *, force: bool = False) -> None:
        """Schedule a sync of one station; a running worker picks the latest state up."""
        self._pending[station_id] = self._pending.get(station_id, False) or force
        worker = self._workers.get(station_id)
        if worker is None or worker.done():
            self._workers[station_id] = asyncio.create_task(self._work(station_id))

    async def _work(self, station_id: str) -> None:
        while station_id in self._pending:
            force = self._pending.pop(station_id)
            try:
                await self._sync(station_id, force)
            except Exception:
                log.exception("station %s: command delivery failed", station_id)
        self._workers.pop(station_id, None)

    # -- one sync --------------------------------------------------------------------
    async def _sync(self, station_id: str, force: bool) -> None:
        station = self.stations.get(station_id)
        if station is None or station_id not in self.desired:
            return
        if not station.reconciled:
            return  # not spoken yet (maybe not booted): reconcile() will bring it up to date
        cmd = self.desired[station_id]
        memory = self._memory.get(station_id, policy.Memory())
        action = policy.decide(cmd, memory, _now(), self.rules, force=force)
        dialect = station.dialect
        if type(action) is policy.Clear:
            payload = dialect.clear_profile(station_id)
            await self._attempt(station, "ClearChargingProfile", payload, action.signal_id)
            self._memory[station_id] = policy.Memory(None, memory.purpose)
            return
        if type(action) is policy.Hold or cmd is None:
            if type(action) is policy.Hold and action.retry_in is not None:
                self._later(station_id, action.retry_in)  # a raise held back: try then
            log.debug("station %s: nothing sent (%s)", station_id, action)
            return
        assert type(action) is policy.Send
        caps = await station.capabilities()
        zone = self.registry.zone(station_id)
        purposes = dialect.purposes
        index: int | None = min(action.purpose, len(purposes) - 1)
        while index is not None:
            payload = dialect.set_profile(
                cmd, zone, purposes[index], _now(), self.config.start_offset_s, caps
            )
            status = await self._attempt(
                station, "SetChargingProfile", payload, cmd.signal_id, cmd.target_power_kw
            )
            memory, index = policy.answered(memory, cmd, index, status, _now(), len(purposes))
        self._memory[station_id] = memory

    async def _attempt(
        self,
        station: Target,
        action: str,
        payload: dict[str, Any],
        signal_id: str | None,
        limit_kw: float | None = None,
    ) -> str:
        sent = _now()
        t0 = time.perf_counter()
        try:
            status = policy.status_of(action, await station.request(action, payload))
        except TimeoutError:
            status = "Timeout"
        except (ConnectionClosed, StationOffline):
            status = "Offline"
        except ChargerRefused as exc:
            status = policy.status_of_error(exc.code)
        elapsed = time.perf_counter() - t0
        self.metrics.commands.labels(status).inc()
        self.metrics.command_seconds.observe(elapsed)
        log.debug("station %s: %s -> %s in %.0f ms", station.id, action, status, elapsed * 1000)
        self.outcomes.note(station.id, action, status)
        await self._publish(
            CommandResult(
                station_id=station.id,
                signal_id=signal_id,
                action=action,
                status=status,  # type: ignore[arg-type]
                sent_ts=sent,
                result_ts=_now(),
                latency_ms=round(elapsed * 1000, 3),
                limit_kw=limit_kw,
            )
        )
        return status

    async def _offline_unless_held(self, station_id: str) -> None:
        """Report ``station_id`` offline, unless a worker holds it.

        With other workers the word of a station that connected to one of them a moment
        ago may still be on its way, so the answer waits ``offline_grace_s`` first.
        """
        if self.holders is not None:
            await asyncio.sleep(self.config.offline_grace_s)
            if (
                station_id in self.stations
                or self.holders.held_elsewhere(station_id)
                or self.desired.get(station_id) is None
            ):
                return
        await self._offline(station_id)

    async def _offline(self, station_id: str) -> None:
        cmd = self.desired.get(station_id)
        now = _now()
        self.metrics.commands.labels("Offline").inc()
        self.outcomes.note(station_id, "SetChargingProfile", "Offline")
        await self._publish(
            CommandResult(
                station_id=station_id,
                signal_id=cmd.signal_id if cmd else None,
                action="SetChargingProfile",
                status="Offline",
                sent_ts=now,
                result_ts=now,
            )
        )

    async def _publish(self, result: CommandResult) -> None:
        self.metrics.command_outcome(result.signal_id, result.action, result.status)
        try:
            await self.bus.publish(topics.COMMAND_RESULTS, result.station_id, encode(result))
        except BusError as exc:
            log.warning("command result for %s not published: %r", result.station_id, exc)

    def _later(self, station_id: str, delay: float) -> None:
        """Kick ``station_id`` again in ``delay`` s (once; a pending timer is kept)."""
        timer = self._timers.get(station_id)
        if timer is not None and not timer.cancelled():
            return

        def fire() -> None:
            self._timers.pop(station_id, None)
            self.kick(station_id)

        self._timers[station_id] = asyncio.get_running_loop().call_later(delay, fire)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)
