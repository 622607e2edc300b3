"""``/v1/stations``: import and list stations (zones, limits, password hashes)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from dr_bridge.api.body import load_json
from dr_bridge.api.schemas import ErrorBody, StationOut
from dr_bridge.models import StationIn, parse_stations
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


@router.get("", response_model=list[StationOut])
async def list_stations(request: Request) -> Response:
    """Every known station, without secrets."""
    directory: ZoneDirectory = request.app.state.zones
    items = directory.stations()
    return Response(
        b"[" + b",".join(encode(s) for s in items) + b"]", media_type="application/json"
    )
