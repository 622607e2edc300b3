"""A small OpenADR 3.0.1 VTN for the tests: a test peer, not a product.

No OpenADR 3 VTN can be installed here (the Alliance's reference VTN is not packaged), so
this follows the 3.0.1 spec for what a polling VEN uses: ``POST /auth/token``
(OAuth2 client credentials, HTTP Basic client authentication, bearer tokens) and
``GET /events`` with ``skip``/``limit`` paging (at most 50 a page), events as the spec's
JSON objects (``id``, ``programID``, ``modificationDateTime``, ``intervalPeriod``,
``payloadDescriptors``, ``intervals[].payloads``, ``targets`` as ``[{type, values}]``).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Header, HTTPException, Query, Request


class Vtn3:
    """Holds events; ``app`` is the ASGI app serving them."""

    def __init__(self, client_id: str = "ven-client", client_secret: str = "s3cret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.events: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.pages_served = 0
        self.token_requests = 0
        self.app = self._build()

    def put(self, event: dict[str, Any], *, touch: bool = True) -> None:
        """Create or replace an event; ``touch`` sets modificationDateTime like a VTN."""
        event = dict(event)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        event.setdefault("objectType", "EVENT")
        event.setdefault("programID", "prog-1")
        event.setdefault(
            "createdDateTime", self.events.get(event["id"], {}).get("createdDateTime", now)
        )
        if touch:
            event["modificationDateTime"] = now
        self.events[event["id"]] = event

    def _build(self) -> FastAPI:
        app = FastAPI(title="OpenADR 3.0.1 test VTN")

        @app.post("/auth/token")
        async def token(
            request: Request, authorization: str | None = Header(None)
        ) -> dict[str, Any]:
            # application/x-www-form-urlencoded, parsed by hand (no python-multipart here)
            form = parse_qs((await request.body()).decode())
            grant_type = (form.get("grant_type") or [""])[0]
            self.token_requests += 1
            if grant_type != "client_credentials" or not authorization:
                raise HTTPException(400, {"error": "invalid_request"})
            scheme, _, blob = authorization.partition(" ")
            cid, _, secret = base64.b64decode(blob).decode().partition(":")
            if scheme != "Basic" or (cid, secret) != (self.client_id, self.client_secret):
                raise HTTPException(401, {"error": "invalid_client"})
            tok = secrets.token_hex(16)
            self.tokens.add(tok)
            return {"access_token": tok, "token_type": "Bearer", "expires_in": 3600}

        @app.get("/events")
        async def events(
            skip: int = Query(0, ge=0),
            limit: int = Query(50, ge=1, le=50),
            authorization: str | None = Header(None),
        ) -> list[dict[str, Any]]:
            if not authorization or authorization.removeprefix("Bearer ") not in self.tokens:
                raise HTTPException(401, "unauthorized")
            self.pages_served += 1
            ordered = sorted(self.events.values(), key=lambda e: e["id"])
            return ordered[skip : skip + limit]

        return app
