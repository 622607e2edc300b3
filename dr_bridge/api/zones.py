"""``/v1/zones``: each zone's capacity, floors and stations, and (from the engine) its load,
cap and connected stations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from dr_bridge.api.schemas import ZoneOut
from dr_bridge.views import ViewReader, ViewsUnavailable
from dr_bridge.zones import ZoneDirectory

router = APIRouter(prefix="/v1/zones", tags=["zones"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token"},
    503: {"description": "the engine's database did not answer"},
}


async def zone_rows(request: Request) -> list[dict[str, Any]]:
    """Every zone: configuration from the station directory, live figures from the views.

    Without a database (a bridge run on its own) the live fields are null.
    """
    directory: ZoneDirectory = request.app.state.zones
    views: ViewReader | None = request.app.state.views
    zones: dict[str, dict[str, Any]] = {}
    for s in directory.stations():
        z = zones.setdefault(
            s.zone_id,
            {"zone_id": s.zone_id, "stations": 0, "capacity_kw": 0.0, "floor_kw": 0.0},
        )
        z["stations"] += 1
        z["capacity_kw"] += min(s.max_station_kw, s.contract_max_kw)
        z["floor_kw"] += s.min_active_kw
    for zone_id in directory.zones() - zones.keys():
        zones[zone_id] = {"zone_id": zone_id, "stations": 0, "capacity_kw": 0.0, "floor_kw": 0.0}
    live: dict[str, list[dict[str, Any]]] = {}
    if views is not None:
        try:
            live = await views.many(["zone_utilisation", "station_counts", "active_dr"])
        except ViewsUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
    load = {r["zone_id"]: r for r in live.get("zone_utilisation", [])}
    counts = {r["zone_id"]: r for r in live.get("station_counts", [])}
    caps = {r["zone_id"]: r for r in live.get("active_dr", [])}
    for zone_id, z in zones.items():
        z["capacity_kw"] = round(z["capacity_kw"], 3)
        z["floor_kw"] = round(z["floor_kw"], 3)
        z["online"] = counts[zone_id]["online"] if zone_id in counts else None
        z["offline"] = counts[zone_id]["offline"] if zone_id in counts else None
        z["load_kw"] = load[zone_id]["load_kw"] if zone_id in load else None
        z["utilisation_pct"] = load[zone_id]["utilisation_pct"] if zone_id in load else None
        cap = caps.get(zone_id)
        z["cap_kw"] = cap["cap_kw"] if cap else None
        z["signal_id"] = cap["signal_id"] if cap else None
        z["compliance"] = cap["compliance"] if cap else None
        if views is None:
            z["online"] = z["offline"] = z["load_kw"] = z["utilisation_pct"] = None
    return [zones[k] for k in sorted(zones)]


@router.get("", response_model=list[ZoneOut], responses=_ERRORS)
async def list_zones(request: Request) -> list[dict[str, Any]]:
    """Every known zone with capacity, floors, stations and, live, load and cap."""
    return await zone_rows(request)


@router.get("/{zone_id}", response_model=ZoneOut, responses={404: {}, **_ERRORS})
async def get_zone(request: Request, zone_id: str) -> dict[str, Any]:
    """One zone."""
    for z in await zone_rows(request):
        if z["zone_id"] == zone_id:
            return z
    raise HTTPException(404, f"no zone {zone_id!r}")
