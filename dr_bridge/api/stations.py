"""``/v1/stations``: import and list stations (zones, limits, password hashes)."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, HTTPException, Request

from dr_bridge.api.body import load_json
from dr_bridge.api.schemas import ErrorBody, StationOut, StationStateOut
from dr_bridge.models import StationIn, parse_stations
from dr_bridge.views import ViewReader, ViewsUnavailable
from dr_bridge.zones import ZoneDirectory
from pipeline import topics
from pipeline.bus import Bus, Message, PublishError
from pipeline.contracts import StationCredential, StationZone, encode

router = APIRouter(prefix="/v1/stations", tags=["stations"])


@router.post(
    "",
    status_code=201,
    responses={
        201: {"description": "every station stored"},
        401: {"description": "missing or wrong bearer token"},
        422: {"model": ErrorBody, "description": "bad fields as [index].field; nothing stored"},
        503: {"description": "the bus did not confirm; send the same list again"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": StationIn.model_json_schema()}
                }
            },
        }
    },
)
async def import_stations(request: Request) -> dict[str, int]:
    """Store a list of stations, all or nothing; each upsert replaces the station."""
    raw = load_json(await request.body())
    stations = parse_stations(raw)
    zones_out = [StationZone(**s.model_dump(exclude={"password_hash"})) for s in stations]
    creds = [
        StationCredential(station_id=s.station_id, password_hash=s.password_hash) for s in stations
    ]
    messages = [Message(topics.STATION_ZONES, z.station_id, encode(z)) for z in zones_out]
    messages += [Message(topics.STATION_CREDENTIALS, c.station_id, encode(c)) for c in creds]
    bus: Bus = request.app.state.bus
    try:
        await bus.publish_many(messages)
    except PublishError as exc:
        # Upserts are idempotent, so sending the same list again is safe.
        raise HTTPException(503, f"not confirmed by the bus: {exc}") from exc
    directory: ZoneDirectory = request.app.state.zones
    for z in zones_out:
        directory.put(z)
    return {"imported": len(stations)}


@router.get(
    "",
    response_model=list[StationStateOut],
    responses={503: {"description": "the engine's database did not answer"}},
)
async def list_stations(request: Request) -> list[dict[str, Any]]:
    """Every known station, without secrets, with its connection state, connectors, limit
    and last command result when the engine's views are available."""
    directory: ZoneDirectory = request.app.state.zones
    views: ViewReader | None = request.app.state.views
    items = [msgspec.to_builtins(s) for s in directory.stations()]
    if views is None:
        return items
    try:
        state = {r["station_id"]: r for r in await views.rows("stations")}
    except ViewsUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    for item in items:
        row = state.get(item["station_id"], {})
        item.update({k: row.get(k) for k in _STATE_FIELDS})
    return items


_STATE_FIELDS = tuple(f for f in StationStateOut.model_fields if f not in StationOut.model_fields)
