"""The DR bridge as one component: store, publisher, zones, API and VENs, for ``gridctl run``.

``Bridge(bus, settings)``; ``await start()`` brings up everything configured (the API
always; an OpenADR 2.0b VEN when ``settings.openadr2`` is set; an OpenADR 3 VEN when
``settings.openadr3`` is set); ``await stop()`` takes it down in reverse order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dr_bridge.api import create_app
from dr_bridge.config import BridgeSettings
from dr_bridge.intake import Intake
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore
from dr_bridge.server import ApiServer
from dr_bridge.states import SignalStates
from dr_bridge.token import ensure_token, token_path
from dr_bridge.views import ViewReader
from dr_bridge.zones import ZoneDirectory
from pipeline.bus import Bus
from pipeline.health import Health

log = logging.getLogger(__name__)


class Bridge:
    """Everything of the DR bridge, started and stopped together."""

    def __init__(
        self,
        bus: Bus,
        settings: BridgeSettings,
        *,
        serve_api: bool = True,
        openadr3_transport: Any = None,
        health: Health | None = None,
        views: ViewReader | None = None,
        load: Any = None,
    ) -> None:
        """``serve_api=False`` builds the app without serving it (tests use ASGI);
        ``openadr3_transport`` is an httpx transport for the OpenADR 3 VEN (tests);
        ``health``: the probes of the other components of this process, which
        ``/healthz`` reports next to the bridge's own; ``views``: the engine's views,
        for the read endpoints (zones' load, station state, the status page); ``load`` a
        :class:`dr_bridge.telemetry.ZoneLoadReader` (default: the engine's views at
        ``settings.database_url``)."""
        self.bus = bus
        self.settings = settings
        self._serve_api = serve_api
        self._openadr3_transport = openadr3_transport
        self.store: RevisionStore | None = None
        self.publisher: Publisher | None = None
        self.zones: ZoneDirectory | None = None
        self.signal_states: SignalStates | None = None
        self.intake: Intake | None = None
        self.app: Any = None
        self.server: ApiServer | None = None
        self.tokens: tuple[str, ...] = ()
        #: the generated token, only on the start that created it (show it once)
        self.token: str | None = None
        #: where the generated token is kept (None when tokens are configured)
        self.token_file: Path | None = None
        self.vens: list[Any] = []
        self.health = health or Health()
        self.views = views
        self.health.add("bridge", self.probe)
        #: measured load per zone (a ZoneLoadReader): from ``database_url``, or injected
        self.load: Any = load

    @property
    def api_url(self) -> str | None:
        return self.server.url if self.server else None

    @property
    def port(self) -> int:
        """The API's bound port (the configured one, or the one picked for port 0)."""
        return self.server.port if self.server else self.settings.port

    async def start(self) -> None:
        s = self.settings
        self.store = RevisionStore(s.data_dir)
        self.publisher = Publisher(self.bus, self.store)
        await self.publisher.start()
        self.zones = ZoneDirectory(self.bus, s.extra_zones)
        await self.zones.start()
        self.signal_states = SignalStates(self.bus)
        await self.signal_states.start()
        self.intake = Intake(self.store, self.publisher, s.confirm_timeout_s)
        self.tokens = tuple(t for t in s.tokens if t)
        if not self.tokens:
            token, created = ensure_token(s.data_dir)
            self.tokens = (token,)
            self.token_file = token_path(s.data_dir)
            # The caller prints it once, at first start; afterwards it is only in the file.
            self.token = token if created else None
        self.app = create_app(
            self.bus,
            s,
            intake=self.intake,
            zones=self.zones,
            tokens=self.tokens,
            signal_states=self.signal_states,
            health=self.health,
            views=self.views,
        )
        if self._serve_api:
            self.server = ApiServer(self.app, s.host, s.port)
            await self.server.start()
        if self.load is None and s.database_url:
            from dr_bridge.telemetry import PgZoneLoad

            self.load = PgZoneLoad(s.database_url)
        if s.openadr2 is not None:
            from dr_bridge.openadr2 import OpenADR2Ven

            ven2 = OpenADR2Ven(s.openadr2, self.intake, self.zones, s.simple_levels, load=self.load)
            await ven2.start()
            self.vens.append(ven2)
        if s.openadr3 is not None:
            from dr_bridge.openadr3 import OpenADR3Ven

            ven3 = OpenADR3Ven(
                s.openadr3,
                self.intake,
                self.zones,
                s.simple_levels,
                transport=self._openadr3_transport,
                load=self.load,
            )
            if ven3.settings.callback_url:
                self.app.state.openadr3_webhook = ven3  # wakes it on the VTN's callbacks
            await ven3.start()
            self.vens.append(ven3)

    async def probe(self) -> str:
        """Health: the publisher still retries, and how many revisions await the bus."""
        if self.publisher is None or self.store is None:
            raise RuntimeError("not started")
        if not self.publisher.running:
            raise RuntimeError("the DR publisher has stopped")
        waiting = len(self.store.pending())
        return f"API up; {waiting} signal revision(s) awaiting bus confirmation"

    async def stop(self) -> None:
        for ven in reversed(self.vens):
            await ven.stop()
        self.vens.clear()
        if self.server is not None:
            await self.server.stop()
        if self.zones is not None:
            await self.zones.stop()
        if self.signal_states is not None:
            await self.signal_states.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        if self.store is not None:
            self.store.close()
        if self.views is not None:
            await self.views.close()

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
