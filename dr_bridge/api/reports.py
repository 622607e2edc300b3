"""``GET /v1/signals/{id}/report``: the DR event report of one signal, JSON or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from dr_bridge import dr_report

router = APIRouter(prefix="/v1/signals", tags=["signals"])


@router.get(
    "/{signal_id}/report",
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}}},
        404: {"description": "the engine has no such signal"},
        503: {"description": "no engine database configured, or it cannot be reached"},
    },
)
async def signal_report(
    request: Request,
    signal_id: str,
    format: str = Query("json", pattern="^(json|csv)$", description="json or csv"),
) -> Response:
    """Baseline, cap, load per minute, reduction (kW, kWh), compliance and commands.

    ``Accept: text/csv`` works as well as ``?format=csv``."""
    database_url = request.app.state.settings.database_url
    if not database_url:
        return JSONResponse({"detail": "no engine database configured"}, status_code=503)
    try:
        report = await dr_report.fetch(database_url, signal_id)
    except Exception as exc:  # the database is away or not migrated: say so, no traceback
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return JSONResponse({"detail": f"engine database: {first}"}, status_code=503)
    if report is None:
        return JSONResponse({"detail": f"no signal {signal_id!r} in the engine"}, status_code=404)
    if format == "csv" or "text/csv" in request.headers.get("accept", ""):
        return Response(dr_report.to_csv(report), media_type="text/csv")
    return JSONResponse(report)
