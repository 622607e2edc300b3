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
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from cli import gc_settings
from cli.datadir import DataDirLock, without_password, write_state
from cli.paths import project_dir
from pipeline.bus import Bus, LocalBus
from pipeline.bus.prefixed import with_prefix

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
    #: further BridgeSettings fields of the OpenADR VENs (``openadr3_client_id``, ...)
    openadr_options: dict[str, Any] = field(default_factory=dict)
    gateway_options: dict[str, Any] = field(default_factory=dict)
    #: gateway processes sharing the OCPP port (1: the gateway runs in this process);
    #: more need a Kafka bus: ``bus="kafka"``, else the embedded Tansu broker is started
    gateway_workers: int = 1
    log_level: str = "INFO"
    log_format: str = "text"


@dataclass
class Endpoints:
    """What the banner prints and what ``demo`` connects to."""

    ocpp_url: str
    api_url: str
    #: where the generated API token is kept (None: tokens were configured)
    token_file: Path | None
    #: the API token, for in-process clients (the demo); never printed
    token: str | None
    #: a DSN for dashboards: the embedded server's read-only role, or the configured URL
    #: without its password
    database_url: str | None
    #: the libpq password file of ``database_url`` (embedded server)
    database_password_file: Path | None
    engine: str
    bus: str


def private_dir(path: Path) -> None:
    """Create ``path`` (0700); tighten an existing one we own to 0700.

    The data dir holds the API token, the bus log (station password hashes), the DR
    revisions and the database's password files.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o700)


def redact(url: str | None) -> str | None:
    """``url`` without the password, for printing (``postgresql://u:***@host/db``)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Runtime:
    """Start and stop every component of one gridctl process."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.bus: Bus | None = None
        self.database_url: str | None = settings.database_url
        self._pg: Any = None
        self._engine: Any = None
        self._gateway: Any = None
        self._workers: Any = None
        self._tansu: Any = None
        self._bridge: Any = None
        self._events: Any = None
        self.endpoints: Endpoints | None = None
        self._lock = DataDirLock(settings.data_dir)

    @property
    def topic_prefix(self) -> str:
        """``${topic_prefix}`` as the migrations get it (``--var``, then vars.defaults)."""
        if "topic_prefix" in self.settings.migration_vars:
            return self.settings.migration_vars["topic_prefix"]
        from pipeline.migrate.errors import MigrateError
        from pipeline.migrate.files import load_vars

        try:
            return load_vars(self.settings.migrations_dir).get("topic_prefix", "")
        except MigrateError:
            return ""

    async def start(self) -> Endpoints:
        s = self.settings
        private_dir(s.data_dir)
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

        bootstrap, kafka_config = s.kafka_bootstrap, dict(s.kafka_config)
        if s.gateway_workers > 1 and s.bus == "local":
            # Workers meet on a Kafka-protocol bus: the embedded broker, on loopback.
            from pipeline.bus.tansu import CLIENT_CONFIG, TansuBroker

            # Spawned from this (the main) thread: the broker dies with the process even
            # when ``run`` is killed with -9 (workers have --watch-parent; Tansu cannot).
            self._tansu = TansuBroker(log_path=s.data_dir / "tansu.log", die_with_parent=True)
            self._tansu.spawn()
            await loop.run_in_executor(None, self._tansu.wait_ready)
            bootstrap, kafka_config = self._tansu.bootstrap, {**CLIENT_CONFIG, **kafka_config}
        if bootstrap is not None and (s.bus == "kafka" or self._tansu is not None):
            from pipeline.bus import KafkaBus

            raw: Bus = KafkaBus(bootstrap, config=kafka_config)
        elif s.bus == "kafka":
            raise ValueError("--bus kafka needs --kafka-bootstrap HOST:PORT")
        else:
            raw = LocalBus(s.data_dir / "bus")
        # Every component but the engine names topics by contract; the prefix is put on
        # here, once. The engine's topics come from the compiled catalog, prefixed already.
        prefix = self.topic_prefix
        self.bus = with_prefix(raw, prefix)
        await self.bus.start()
        from cli.event_log import EventLog

        self._events = EventLog(self.bus)
        await self._events.start()

        if s.engine == "embedded":
            from pipeline.engine.thread import EngineThread

            assert self.database_url is not None
            # Its own thread and loop: the gateway's connections would otherwise delay
            # every await of the engine's tick (pipeline/engine/thread.py says how much).
            self._engine = EngineThread(self.database_url, raw, tick=s.tick, topic_prefix=prefix)
            await self._engine.start()

        if s.gateway_workers == 1:
            from ocpp_gateway import Gateway, GatewayConfig

            self._gateway = Gateway(
                self.bus,
                GatewayConfig(
                    host=s.host,
                    port=s.ocpp_port,
                    allow_unknown_stations=s.allow_unknown_stations,
                    # /metrics on the OCPP port names signal ids: the API's tokens read it
                    # (asked per scrape: a generated token exists once the bridge started)
                    metrics_tokens=lambda: self._bridge.tokens if self._bridge else (),
                    state_dir=str(s.data_dir / "gateway"),
                    **s.gateway_options,
                ),
            )
            await self._gateway.start()
            gateway_port = self._gateway.port
        else:
            # the workers start once the API has its token (they serve /metrics with it)
            from pipeline.embedded_pg import free_port

            gateway_port = s.ocpp_port or free_port()

        from cli.health_probes import build_health
        from dr_bridge import Bridge, BridgeSettings

        health = build_health(
            bus=self.bus,
            engine=self._engine,
            tick=s.tick,
            database_url=self.database_url,
            gateway_host=s.host,
            gateway_port=gateway_port,
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
                database_url=self.database_url,
                **s.openadr_options,
            ),
            health=health,
            views=self._views(),
        )
        await self._bridge.start()
        if s.gateway_workers > 1:
            from cli.workers import GatewayWorkers, WorkerSpec

            assert bootstrap is not None
            spec = WorkerSpec(
                count=s.gateway_workers,
                port=gateway_port,
                bootstrap=bootstrap,
                data_dir=s.data_dir,
                host=s.host,
                kafka_config=kafka_config,
                topic_prefix=prefix,
                allow_unknown_stations=s.allow_unknown_stations,
                options=s.gateway_options,
                log_level=s.log_level,
                log_format=s.log_format,
            )
            self._workers = GatewayWorkers(spec, api_tokens=self._bridge.tokens)
            await self._workers.start()

        shown_host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
        tokens = getattr(self._bridge, "tokens", ())
        self.endpoints = Endpoints(
            ocpp_url=(
                f"{'wss' if s.gateway_options.get('certfile') else 'ws'}://"
                f"{shown_host}:{gateway_port}/ocpp/{{station_id}}"
            ),
            api_url=f"http://{shown_host}:{self._bridge.port}",
            token_file=getattr(self._bridge, "token_file", None),
            token=tokens[0] if tokens else None,
            database_url=(
                self._pg.reader_dsn if self._pg is not None else redact(self.database_url)
            ),
            database_password_file=self._pg.reader_passfile if self._pg is not None else None,
            engine=s.engine,
            bus=self._bus_name(bootstrap),
        )
        write_state(
            s.data_dir,
            {
                # the read-only role for status, query and dashboards (a passfile, no
                # password); a configured URL without its password
                "database_url": self._reader_dsn(),
                "api_url": self.endpoints.api_url,
                "ocpp_url": self.endpoints.ocpp_url,
                "engine": s.engine,
            },
        )
        # What was imported and built so far lives as long as the process: kept out of
        # the cyclic GC's full collections, and the young generation collected less
        # often so that a DR event's commands die young (see cli/gc_settings.py).
        gc_settings.settle()
        return self.endpoints

    def _bus_name(self, bootstrap: str | None) -> str:
        s = self.settings
        workers = f", {s.gateway_workers} gateway workers" if s.gateway_workers > 1 else ""
        if self._tansu is not None:
            return f"kafka (embedded Tansu on {bootstrap}, in memory{workers})"
        return "local" if s.bus == "local" else f"kafka ({bootstrap}{workers})"

    @property
    def gateway_pids(self) -> list[int]:
        """The worker processes' ids (none when the gateway runs in this process)."""
        return self._workers.pids if self._workers is not None else []

    def _views(self) -> Any:
        """The engine's views for the API's read endpoints, as the read-only role."""
        from dr_bridge.views import ViewReader

        reader = self._reader_dsn()
        return ViewReader(reader, project_dir("sql")) if reader else None

    def _reader_dsn(self) -> str | None:
        if self._pg is not None:
            return str(self._pg.reader_dsn)
        return without_password(self.database_url) if self.database_url else None

    async def stop(self, *, discard_database: bool = False) -> None:
        """Stop every component; ``discard_database`` also deletes the embedded cluster,
        which may live outside the data dir (relocated for root), for throw-away runs."""
        components = (
            self._bridge, self._workers, self._gateway, self._engine, self._events, self.bus,
        )  # fmt: skip
        for component in components:
            if component is not None:
                with contextlib.suppress(Exception):
                    await component.stop()
        if self._tansu is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._tansu.stop)
        if self._pg is not None:
            end = self._pg.destroy if discard_database else self._pg.stop
            await asyncio.get_running_loop().run_in_executor(None, end)
        self._lock.release()
