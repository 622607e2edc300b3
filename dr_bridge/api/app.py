"""The FastAPI application: routes, auth and the translation of bridge errors to HTTP.

``create_app`` wires already-started parts (intake, zone directory, bus) and holds no
state of its own, so tests drive it through httpx's ASGI transport and ``gridctl run``
serves it with :class:`dr_bridge.server.ApiServer`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from dr_bridge.api import docs, reports, signals, stations, status_page, webhooks
from dr_bridge.api import zones as zones_api
from dr_bridge.api.auth import FailureLimiter, require_token
from dr_bridge.api.body import MAX_SIGNAL_BYTES, BodyLimit
from dr_bridge.config import BridgeSettings
from dr_bridge.errors import (
    NotConfirmed,
    SignalInvalid,
    SignalNotFound,
    StaleRevision,
    StoredRecordInvalid,
)
from dr_bridge.intake import Intake
from dr_bridge.states import SignalStates
from dr_bridge.views import ViewReader
from dr_bridge.zones import ZoneDirectory
from pipeline.bus import Bus
from pipeline.health import Health


def create_app(
    bus: Bus,
    settings: BridgeSettings,
    *,
    intake: Intake,
    zones: ZoneDirectory,
    tokens: Sequence[str],
    signal_states: SignalStates | None = None,
    health: Health | None = None,
    views: ViewReader | None = None,
) -> FastAPI:
    """The API app. ``tokens``: accepted bearer tokens (at least one); ``health``: the
    probes ``/healthz`` runs (none: it answers for the API alone)."""
    if not tokens:
        raise ValueError("the API needs at least one token")
    app = FastAPI(
        title="gridctl DR bridge",
        version="1",
        description=(
            "Demand-response signals in; stations and zones with their live state; "
            "health and metrics. Every /v1 call needs `Authorization: Bearer <token>` "
            "(the token file `gridctl run` names)."
        ),
        docs_url=None,
        redoc_url=None,
    )
    docs.install(app)
    app.state.bus = bus
    app.state.settings = settings
    app.state.intake = intake
    app.state.zones = zones
    app.state.signal_states = signal_states
    auth = [Depends(require_token(tokens))]
    app.state.views = views
    auth = [Depends(require_token(tokens, FailureLimiter()))]
    app.add_middleware(BodyLimit, limits={"/v1/signals": MAX_SIGNAL_BYTES})

    app.include_router(reports.router, dependencies=auth)
    app.include_router(webhooks.router)  # its own token: the one the VTN was given
    app.include_router(signals.router, dependencies=auth)
    app.include_router(stations.router, dependencies=auth)
    app.include_router(zones_api.router, dependencies=auth)
    app.include_router(status_page.router, dependencies=auth)
    status_page.install(app)

    probes = health or Health()

    @app.get(
        "/healthz",
        tags=["ops"],
        responses={
            200: {"description": "every component up"},
            503: {"description": "a component is down or stale; see `components`"},
        },
    )
    async def healthz() -> JSONResponse:
        """Each component's state (engine tick age, database, bus, gateway, bridge);
        503 when any is down or stale. No token needed; the details hold no secrets."""
        ok, body = await probes.report()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], dependencies=auth, response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text: the bridge's, the gateway's and the engine's metrics."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(SignalInvalid)
    async def _invalid(_: Request, exc: SignalInvalid) -> JSONResponse:
        detail = [{"loc": ["body", f], "field": f, "msg": m} for f, m in exc.errors]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StaleRevision)
    async def _stale(_: Request, exc: StaleRevision) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "stored_modification": exc.stored}, status_code=409
        )

    @app.exception_handler(SignalNotFound)
    async def _missing(_: Request, exc: SignalNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"no signal {exc.args[0]!r}"}, status_code=404)

    @app.exception_handler(StoredRecordInvalid)
    async def _unreadable(_: Request, exc: StoredRecordInvalid) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "signal_id": exc.signal_id, "modification": exc.modification},
            status_code=409,
        )

    @app.exception_handler(NotConfirmed)
    async def _unconfirmed(_: Request, exc: NotConfirmed) -> JSONResponse:
        # Stored and queued: the publisher keeps retrying; the same request later returns it.
        return JSONResponse(
            {"detail": f"{exc}; queued and retried, repeat the request to see it confirmed"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    return app
