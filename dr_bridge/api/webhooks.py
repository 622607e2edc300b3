"""``/v1/openadr3/notifications``: where an OpenADR 3 VTN calls back (subscriptions).

Authenticated by the bearer token the VEN gave the VTN in its subscription (not the API
token: the VTN never sees that). A notification only wakes the VEN for an immediate poll:
what it says is read again from the VTN, so a forged or replayed callback can at most cause
one extra poll. ``GET ?echo=`` answers the value back, for VTNs that check a callback URL.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/openadr3", tags=["openadr"])


@router.get("/notifications", response_class=PlainTextResponse)
async def echo(echo: str = Query("", max_length=256)) -> str:
    """The callback check some VTNs make before they accept a subscription."""
    return echo


@router.post("/notifications", responses={401: {}, 404: {}})
async def notification(request: Request) -> Response:
    """A VTN's notification of a changed object: poll the VTN now."""
    hook = getattr(request.app.state, "openadr3_webhook", None)
    if hook is None:
        return JSONResponse({"detail": "no OpenADR 3 subscription here"}, status_code=404)
    offered = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
    if not offered or not hmac.compare_digest(offered, hook.callback_token.encode()):
        return JSONResponse(
            {"detail": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        body = await request.json()
        what = f"{body.get('operation')} {body.get('objectType')}"
    except (ValueError, AttributeError):
        what = "a notification"
    log.debug("OpenADR 3 VTN notified %s: polling now", what)
    hook.notify()
    return JSONResponse({}, status_code=200)
