"""The gateway as one object: what ``gridctl run`` wires in.

``Gateway(bus, config)``; ``await gateway.start()`` loads station credentials and zones
and the desired command state from the bus, then listens; ``gateway.port`` is the bound
port; ``await gateway.stop()`` lets in-flight calls finish and closes every charger with
1001 (they reconnect to another instance or to us after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ocpp_gateway.auth import StationRegistry
from ocpp_gateway.clock import ResultClock
from ocpp_gateway.commands import CommandDelivery
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.connection import Connection
from ocpp_gateway.logsafe import clean
from ocpp_gateway.metrics import GatewayMetrics
from ocpp_gateway.presence import Presence
from ocpp_gateway.server import OcppServer
from ocpp_gateway.station import BootThrottle, Station, StationContext
from ocpp_gateway.versions import DIALECTS
from pipeline import topics
from pipeline.bus import Bus, Record, Subscription
from pipeline.bus.follow import follow, read_to_end

__all__ = ["Gateway"]

log = logging.getLogger("ocpp_gateway")


class Gateway:
    """OCPP central system on a bus."""

    def __init__(self, bus: Bus, config: GatewayConfig | None = None) -> None:
        self.bus = bus
        self.config = config or GatewayConfig()
        self.metrics = GatewayMetrics()
        self.registry = StationRegistry(
            self.config.verify_slots,
            verify_wait_s=self.config.verify_wait_s,
            state_dir=self.config.state_dir,
        )
        self.commands = CommandDelivery(bus, self.config, self.metrics, self.registry)
        self.presence: Presence | None = None
        if self.config.workers > 1 and self.config.report_offline:
            self.presence = Presence(bus, self.config.name, self.config.startup_read_s)
            self.commands.holders = self.presence
        self.ctx = StationContext(bus, self.config, self.metrics, self.registry, self.commands)
        if self.config.boot_rate_per_s:
            self.ctx.boots = BootThrottle(self.config.boot_rate_per_s)
        self.stations: dict[str, Station] = {}
        self.server = OcppServer(self.config, self.registry, self.metrics, self._serve_station)
        self._config_sub: Subscription | None = None
        self._config_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        interval = self.config.result_clock_s
        self._clock = ResultClock(bus, interval) if interval else None

    async def start(self) -> None:
        self.registry.load()
        for dialect in DIALECTS.values():  # compile the validators before chargers come
            for action in dialect.station.handled():
                dialect.schemas.compile(action)
        # Transactions known before a restart (or to the worker a charger held before)
        # come with the config: a TransactionEvent without evse needs them at once.
        self._config_sub = self.bus.subscribe(
            [topics.STATION_CREDENTIALS, topics.STATION_ZONES, topics.OCPP_SESSIONS], group=None
        )
        await read_to_end(self._config_sub, self._apply, self.bus, self.config.startup_read_s)
        self._config_task = asyncio.create_task(
            follow(self._config_sub, self._apply, what="config topics"), name="gateway-config"
        )
        if self.presence is not None:
            await self.presence.start()
        await self.commands.start()
        await self.server.start()
        if self._clock is not None:
            self._clock.start()
        log.info("OCPP gateway listening on port %d", self.port)

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        if self._clock is not None:
            await self._clock.stop()
        await self.server.stop(idle=lambda: all(s.busy == 0 for s in self.stations.values()))
        await self.commands.stop()
        if self.presence is not None:
            await self.presence.stop()
        if self._config_task is not None:
            self._config_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._config_task
        if self._config_sub is not None:
            await self._config_sub.close()
        await self.registry.flush()

    def _apply(self, records: list[Record]) -> None:
        for record in records:
            self._apply_one(record)

    def _apply_one(self, record: Record) -> None:
        if record.topic == topics.OCPP_SESSIONS:
            # what we publish about a station held here is older than what we hold
            self.ctx.sessions.apply(record, held=self.stations.keys())
        else:
            self.registry.apply(record)

    async def _serve_station(
        self, station_id: str, subprotocol: str, connection: ServerConnection
    ) -> None:
        dialect = DIALECTS[subprotocol]
        station = dialect.station(station_id, dialect, self.ctx)
        link = Connection(connection, station)
        old = self.stations.get(station_id)
        if old is not None:
            # The newest connection of a station wins: the old one is usually half-dead.
            log.info("station %s reconnected; closing its previous connection", station_id)
            # In the background: a half-dead peer would hold the new connection for the
            # whole close timeout.
            assert old.link is not None
            closing = asyncio.create_task(old.link.close(1000, "replaced by a new connection"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self.stations[station_id] = station
        self.commands.attach(station)
        self.metrics.connected.inc()
        await station.publish_status("Connected")
        try:
            await link.run()
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                station.warn.warning("frame above max_size, closed (1009)")
            else:
                log.info("station %s disconnected: %s", station_id, clean(exc))
        finally:
            station.warn.close()
            self.metrics.connected.dec()
            current = self.stations.get(station_id) is station
            if current:
                del self.stations[station_id]
            self.commands.detach(station)
            if current:  # a replaced connection's end is not the station going away
                await station.publish_status("Disconnected")
