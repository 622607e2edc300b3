"""``/v1/signals``: send, read and cancel DR signals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from dr_bridge.api.body import load_json
from dr_bridge.api.schemas import ErrorBody, SignalOut, SignalStateOut, UnreadableOut
from dr_bridge.intake import Intake
from dr_bridge.models import SignalRequest, parse_signal_request
from dr_bridge.states import SignalStates, ZoneFloors, floor_warnings
from dr_bridge.views import ViewReader, ViewsUnavailable
from dr_bridge.zones import ZoneDirectory
from pipeline.contracts import DemandResponseSignal, encode

router = APIRouter(prefix="/v1/signals", tags=["signals"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token"},
    422: {"model": ErrorBody, "description": "every bad field, by name"},
    409: {"description": "stale modification, or the stored revision is unreadable"},
    413: {"description": "request body too large"},
    429: {"description": "too many failed authentications from this client"},
    503: {"description": "stored but not yet confirmed by the bus; retried"},
}


def _json(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


def _one(signal: DemandResponseSignal, status_code: int = 200) -> Response:
    return _json(encode(signal), status_code)


async def held_floors(request: Request) -> dict[str, ZoneFloors] | None:
    """The floors the pipeline holds per zone now (``sql/zone_floors.sql``), or None when
    the engine's views are not wired or do not answer (the warning then counts every
    station)."""
    views: ViewReader | None = getattr(request.app.state, "views", None)
    if views is None:
        return None
    try:
        rows = await views.rows("zone_floors")
    except ViewsUnavailable:
        return None
    return {str(r["zone_id"]): ZoneFloors.from_row(r) for r in rows}


def _needs_floors(signals: list[DemandResponseSignal]) -> bool:
    return any(s.signal_type == "CURTAIL" and s.zone_limit_kw is not None for s in signals)


def _state_body(
    request: Request, signal: DemandResponseSignal, held: dict[str, ZoneFloors] | None
) -> dict[str, Any]:
    """The signal and what gridctl does with it: the pipeline's state of it while it is in
    force (``state``: enforced / waiting_for_load / infeasible / no_stations, or
    ``scheduled``, ``ended``, ``pending`` when the pipeline has not evaluated it yet) and
    ``warnings`` the bridge can give at once (a zone limit below the floors)."""
    states: SignalStates | None = getattr(request.app.state, "signal_states", None)
    zones: ZoneDirectory = request.app.state.zones
    body: dict[str, Any] = msgspec.to_builtins(signal)
    now = datetime.now(UTC)
    record = states.get(signal.signal_id) if states is not None else None
    if signal.signal_type == "RESTORE" or signal.end_ts <= now:
        body["state"] = "ended"
    elif record is not None:
        body["state"] = record.state
        body["state_detail"] = msgspec.to_builtins(record)
    else:
        body["state"] = "scheduled" if signal.start_ts > now else "pending"
    warnings = floor_warnings(signal, zones.stations(), held)
    if record is not None and record.state == "infeasible" and record.shortfall_kw:
        warnings.append(f"infeasible: floors and uncontrollable load exceed the cap by "
                        f"{record.shortfall_kw:g} kW")  # fmt: skip
    body["warnings"] = warnings
    return body


async def _with_state(
    request: Request, signal: DemandResponseSignal, status_code: int = 200
) -> Response:
    held = await held_floors(request) if _needs_floors([signal]) else None
    return _json(msgspec.json.encode(_state_body(request, signal, held)), status_code)


@router.post(
    "",
    status_code=201,
    responses={
        201: {"model": SignalStateOut},
        200: {"model": SignalStateOut},
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SignalRequest.model_json_schema()}},
        }
    },
)
async def post_signal(request: Request) -> Response:
    """Send a signal; 201 once it is confirmed on the bus (200 for a repeat of a stored one)."""
    raw = load_json(await request.body())
    zones: ZoneDirectory = request.app.state.zones
    intake: Intake = request.app.state.intake
    now = datetime.now(UTC)
    parsed = parse_signal_request(raw, zones.is_zone, now)
    signal, created = await intake.submit(parsed, now)
    return await _with_state(request, signal, 201 if created else 200)


@router.get("", responses={200: {"model": list[SignalStateOut | UnreadableOut]}, **_ERRORS})
async def list_signals(request: Request, active: bool = False) -> Response:
    """Latest revision of every signal with its state; ``active=true``: not ended and not
    cancelled.

    A stored revision that does not decode is listed by id with ``unreadable`` (the
    reason) instead of its fields, whatever ``active`` says: it may be in force.
    """
    intake: Intake = request.app.state.intake
    readable, unreadable = intake.list_all(active=active)
    held = await held_floors(request) if _needs_floors([s.signal for s in readable]) else None
    items = [msgspec.json.encode(_state_body(request, s.signal, held)) for s in readable]
    items += [
        json.dumps(
            {"signal_id": u.signal_id, "modification": u.modification, "unreadable": u.reason}
        ).encode()
        for u in unreadable
    ]
    return _json(b"[" + b",".join(items) + b"]")


@router.get("/{signal_id}", responses={200: {"model": SignalStateOut}, 404: {}, **_ERRORS})
async def get_signal(request: Request, signal_id: str) -> Response:
    """The latest revision of one signal, its state and warnings."""
    intake: Intake = request.app.state.intake
    return await _with_state(request, intake.get(signal_id).signal)


@router.delete("/{signal_id}", responses={200: {"model": SignalOut}, 404: {}, **_ERRORS})
async def cancel_signal(request: Request, signal_id: str) -> Response:
    """Cancel: publishes a RESTORE revision and returns it once confirmed."""
    intake: Intake = request.app.state.intake
    restore, _created = await intake.cancel(signal_id)
    return _one(restore)
