"""The status page at ``/``: what the NOC floor looks at when Grafana is not deployed.

The page itself (HTML, CSS, script, all shipped in the package: no CDN) holds no data
and needs no token; everything it shows comes from ``GET /v1/status`` with the API's
bearer token, which the page asks for once (or takes from ``/#token=...``) and keeps in
the browser tab's session storage. One call returns the zones with their last hour of
load, the active signals, the stations and the recent alerts, from the engine's views.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from dr_bridge.api.zones import zone_rows
from dr_bridge.views import ViewReader, ViewsUnavailable

ASSETS = files("dr_bridge") / "status_page"
#: alerts shown (the query keeps the latest 100)
ALERTS = 20

router = APIRouter(tags=["status"])


@router.get(
    "/v1/status",
    responses={
        401: {"description": "missing or wrong bearer token"},
        503: {"description": "the engine's database did not answer"},
    },
)
async def status(request: Request) -> dict[str, Any]:
    """Everything the status page shows, in one answer: ``zones`` (as /v1/zones),
    ``history`` (zone -> [[minute start, kW], ...] over the last hour), ``signals``
    (active, with cap, load and compliance), ``stations`` and ``alerts`` (newest first)."""
    views: ViewReader | None = request.app.state.views
    if views is None:
        raise HTTPException(503, "no engine database: the status page needs `gridctl run`")
    zones = await zone_rows(request)
    try:
        live = await views.many(["zone_history", "active_dr", "stations", "recent_alerts"])
    except ViewsUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    history: dict[str, list[list[Any]]] = {}
    for row in live["zone_history"]:
        history.setdefault(row["zone_id"], []).append([row["window_start"], row["load_kw"]])
    return {
        "at": datetime.now(UTC).isoformat(),
        "zones": zones,
        "history": history,
        "signals": live["active_dr"],
        "stations": live["stations"],
        "alerts": live["recent_alerts"][:ALERTS],
    }


def install(app: FastAPI) -> None:
    """``/`` and its assets (no token: they hold no data)."""
    app.mount("/assets/status", StaticFiles(directory=str(ASSETS)), name="status-assets")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(ASSETS / "index.html"), media_type="text/html")
