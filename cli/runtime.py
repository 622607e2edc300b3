"""The composition root: wires engine, bus, gateway and bridge into one process.

``gridctl run`` and ``gridctl demo`` both start a :class:`Runtime`. It is the only place
that knows every component; the gateway and the bridge never import each other and meet
only on the bus. Start order matters: the database and migrations first (the engine's
tables must exist before it ingests), then the bus, then the engine (so the command sink
is live), then the gateway (chargers may connect), then the API (signals may arrive).
Stop runs the other way, so in-flight OCPP calls finish while the bus is still up.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cli.datadir import DataDirLock, without_password, write_state
from cli.paths import project_dir
from pipeline.bus import Bus, LocalBus

log = logging.getLogger("gridctl.run")


def default_migrations_dir() -> Path:
    return project_dir("migrations")


@dataclass
class RunSettings:
    """Everything ``gridctl run`` can be told; defaults work on one machine."""

    data_dir: Path = Path(".gridctl")
    engine: Literal["embedded", "risingwave"] = "embedded"
    database_url: str | None = None
    bus: Literal["local", "kafka"] = "local"
    kafka_bootstrap: str | None = None
    #: extra librdkafka settings (e.g. short group session timeouts on a test broker)
    kafka_config: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    ocpp_port: int = 9000
    api_port: int = 8080
    pg_port: int = 54329
    tick: float = 1.0
    allow_unknown_stations: bool = False
    api_tokens: list[str] = field(default_factory=list)
    migrations_dir: Path = field(default_factory=default_migrations_dir)
    migration_vars: dict[str, str] = field(default_factory=dict)
    openadr2_vtn_url: str | None = None
    openadr2_ven_name: str | None = None
    openadr3_vtn_url: str | None = None
    gateway_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Endpoints:
    """What the banner prints and what ``demo`` connects to."""

    ocpp_url: str
    api_url: str
    token_file: Path | None
    token: str | None
    database_url: str | None
    engine: str
    bus: str


class Runtime:
    """Start and stop every component of one gridctl process."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.bus: Bus | None = None
        self.database_url: str | None = settings.database_url
        self._pg: Any = None
        self._engine: Any = None
        self._gateway: Any = None
        self._bridge: Any = None
        self._events: Any = None
        self.endpoints: Endpoints | None = None
        self._lock = DataDirLock(settings.data_dir)

    async def start(self) -> Endpoints:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()  # before anything touches the data dir's cluster or bus log
        loop = asyncio.get_running_loop()

        if s.engine == "embedded" and not s.database_url:
            from pipeline.embedded_pg import EmbeddedPostgres

            self._pg = EmbeddedPostgres(s.data_dir / "postgres", port=s.pg_port)
            self.database_url = await loop.run_in_executor(None, self._pg.start)
        if self.database_url and (s.engine == "embedded"):
            from pipeline.migrate import apply

            variables = {"kafka_bootstrap": s.kafka_bootstrap or "embedded", **s.migration_vars}
            await loop.run_in_executor(
                None, lambda: apply(self.database_url, s.migrations_dir, variables)
            )

        if s.bus == "kafka":
            if not s.kafka_bootstrap:
                raise ValueError("--bus kafka needs --kafka-bootstrap HOST:PORT")
            from pipeline.bus import KafkaBus

            self.bus = KafkaBus(s.kafka_bootstrap, config=dict(s.kafka_config))
        else:
            self.bus = LocalBus(s.data_dir / "bus")
        await self.bus.start()
        from cli.event_log import EventLog

        self._events = EventLog(self.bus)
        await self._events.start()

        if s.engine == "embedded":
            from pipeline.engine import Engine

            assert self.database_url is not None
            self._engine = Engine(self.database_url, self.bus, tick=s.tick)
            await self._engine.start()

        from ocpp_gateway import Gateway, GatewayConfig

        self._gateway = Gateway(
            self.bus,
            GatewayConfig(
                host=s.host,
                port=s.ocpp_port,
                allow_unknown_stations=s.allow_unknown_stations,
                **s.gateway_options,
            ),
        )
        await self._gateway.start()

        from cli.health_probes import build_health
        from dr_bridge import Bridge, BridgeSettings
        from dr_bridge.views import ViewReader

        health = build_health(
            bus=self.bus,
            engine=self._engine,
            tick=s.tick,
            database_url=self.database_url,
            gateway_host=s.host,
            gateway_port=self._gateway.port,
        )
        self._bridge = Bridge(
            self.bus,
            BridgeSettings(
                host=s.host,
                port=s.api_port,
                data_dir=s.data_dir,
                tokens=list(s.api_tokens),
                openadr2_vtn_url=s.openadr2_vtn_url,
                openadr2_ven_name=s.openadr2_ven_name,
                openadr3_vtn_url=s.openadr3_vtn_url,
            ),
            health=health,
            views=ViewReader(self.database_url, project_dir("sql")) if self.database_url else None,
        )
        await self._bridge.start()

        shown_host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
        self.endpoints = Endpoints(
            ocpp_url=(
                f"{'wss' if s.gateway_options.get('certfile') else 'ws'}://"
                f"{shown_host}:{self._gateway.port}/ocpp/{{station_id}}"
            ),
            api_url=f"http://{shown_host}:{self._bridge.port}",
            token_file=getattr(self._bridge, "token_file", None),
            token=getattr(self._bridge, "token", None),
            database_url=self.database_url,
            engine=s.engine,
            bus=s.bus if s.bus == "local" else f"kafka ({s.kafka_bootstrap})",
        )
        write_state(
            s.data_dir,
            {
                "database_url": without_password(self.database_url) if self.database_url else None,
                "api_url": self.endpoints.api_url,
                "ocpp_url": self.endpoints.ocpp_url,
                "engine": s.engine,
            },
        )
        # What was imported and built so far lives as long as the process: keep it out of
        # the cyclic GC's full collections, which otherwise stop the event loop for tens
        # of ms and set the gateway's ack p99 (tests/drills/test_fuzz_load.py).
        gc.freeze()
        return self.endpoints

    async def stop(self, *, discard_database: bool = False) -> None:
        """Stop every component; ``discard_database`` also deletes the embedded cluster,
        which may live outside the data dir (relocated for root), for throw-away runs."""
        for component in (self._bridge, self._gateway, self._engine, self._events, self.bus):
            if component is not None:
                with contextlib.suppress(Exception):
                    await component.stop()
        if self._pg is not None:
            end = self._pg.destroy if discard_database else self._pg.stop
            await asyncio.get_running_loop().run_in_executor(None, end)
        self._lock.release()
