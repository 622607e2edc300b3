"""An OpenADR 3 VTN for the tests, written to the 3.0.1 / 3.1.0 specs: a test peer, not a product.

Why not the OpenADR Alliance's reference VTN: no snapshot of it can be had on this machine
(the ``fetch`` tool has none; it is not packaged), so this peer follows the spec's
openadr3.yaml for everything a VEN touches, and copies the deviations seen from that VTN:

- ``POST /auth/token``: ``application/x-www-form-urlencoded`` with ``grant_type``,
  ``client_id`` and ``client_secret`` *required* (clientCredentialRequest); a request
  without them gets 400 ``'client_id' is a required property``, as the reference VTN
  answers. HTTP Basic is accepted only when ``allow_basic`` (RFC 6749 allows it).
- ``naive_timestamps``: ``modificationDateTime`` written without offset
  (``2026-12-01 14:09:58``), as the reference VTN does.
- ``/programs``, ``/events`` (``skip``/``limit``, at most 50), ``/vens`` (``venName``
  filter), resources under ``/vens/{id}/resources`` (3.0.1) or ``/resources`` (3.1.0),
  ``/reports`` (POST stores, GET lists), ``/subscriptions`` (GET, POST, PUT) and
  :meth:`Vtn3.notify`, which calls the subscriptions' callback URLs with their tokens.
- An event with targets is listed only to a client whose registered VEN has a resource
  with that name or GROUP target (the reference VTN shows zone-targeted events only to a
  registered VEN); untargeted events are listed to every client.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Header, HTTPException, Query, Request


class Vtn3:
    """Holds programs, events, VENs, resources and reports; ``app`` serves them."""

    def __init__(
        self,
        client_id: str = "ven-client",
        client_secret: str = "s3cret",
        *,
        allow_basic: bool = False,
        naive_timestamps: bool = True,
        version: str = "3.0.1",
        filter_targets: bool = True,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.allow_basic = allow_basic
        self.naive_timestamps = naive_timestamps
        self.version = version
        self.filter_targets = filter_targets
        self.programs: dict[str, dict[str, Any]] = {
            "prog-1": {"id": "prog-1", "objectType": "PROGRAM", "programName": "gridctl-test"}
        }
        self.events: dict[str, dict[str, Any]] = {}
        self.vens: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.reports: list[dict[str, Any]] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}
        #: (callback URL, HTTP status) of every notification sent
        self.notified: list[tuple[str, int]] = []
        self.tokens: dict[str, str] = {}  # token -> client_id
        self.pages_served = 0
        self.token_requests = 0
        self.token_refusals: list[str] = []
        self._seq = 0
        self.app = self._build()

    def _now(self) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        if self.naive_timestamps:
            return now.replace(tzinfo=None).isoformat(sep=" ")
        return now.isoformat().replace("+00:00", "Z")

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-{self._seq}"

    def put(self, event: dict[str, Any], *, touch: bool = True, stamp: str | None = None) -> None:
        """Create or replace an event; ``touch`` sets modificationDateTime like a VTN
        (``stamp`` forces its value, e.g. two changes within one second)."""
        event = dict(event)
        now = self._now()
        event.setdefault("objectType", "EVENT")
        event.setdefault("programID", "prog-1")
        event.setdefault(
            "createdDateTime", self.events.get(event["id"], {}).get("createdDateTime", now)
        )
        if touch:
            event["modificationDateTime"] = stamp or now
        self.events[event["id"]] = event

    async def notify(self, client: Any, operation: str, event: dict[str, Any]) -> None:
        """Call back every subscription to EVENT of the event's program (``client``: an
        httpx.AsyncClient that reaches the callback URLs)."""
        for sub in self.subscriptions.values():
            if sub["programID"] != event.get("programID"):
                continue
            for op in sub["objectOperations"]:
                if "EVENT" not in op["objects"] or operation not in op["operations"]:
                    continue
                headers = (
                    {"Authorization": f"Bearer {op['bearerToken']}"}
                    if op.get("bearerToken")
                    else {}
                )
                body = {
                    "objectType": "EVENT",
                    "operation": {"CREATE": "POST", "UPDATE": "PUT"}.get(operation, operation),
                    "object": event,
                }
                r = await client.post(op["callbackUrl"], json=body, headers=headers)
                self.notified.append((op["callbackUrl"], r.status_code))

    def _client(self, authorization: str | None) -> str:
        token = (authorization or "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise HTTPException(401, "unauthorized")
        return self.tokens[token]

    def _visible(self, event: dict[str, Any], client: str) -> bool:
        targets = event.get("targets") or []
        if not targets or not self.filter_targets:
            return True
        names: set[str] = set()
        for t in targets:
            names.update([t] if isinstance(t, str) else [str(v) for v in t.get("values") or []])
        vens = [v for v in self.vens.values() if v["_client"] == client]
        mine: set[str] = {v["venName"] for v in vens}
        for r in self.resources.values():
            if any(r["venID"] == v["id"] for v in vens):
                mine.add(r["resourceName"])
                for t in r.get("targets") or []:
                    mine.update(
                        [t] if isinstance(t, str) else [str(x) for x in t.get("values", [])]
                    )
        return bool(names & mine)

    def _build(self) -> FastAPI:
        app = FastAPI(title=f"OpenADR {self.version} test VTN")

        @app.post("/auth/token")
        async def token(request: Request, authorization: str | None = Header(None)) -> Any:
            # application/x-www-form-urlencoded, parsed by hand (no python-multipart here)
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            self.token_requests += 1
            if form.get("grant_type") != "client_credentials":
                raise HTTPException(400, {"error": "unsupported_grant_type"})
            cid, secret = form.get("client_id"), form.get("client_secret")
            if (cid is None or secret is None) and self.allow_basic and authorization:
                scheme, _, blob = authorization.partition(" ")
                if scheme == "Basic":
                    cid, _, secret = base64.b64decode(blob).decode().partition(":")
            for name, value in (("client_id", cid), ("client_secret", secret)):
                if value is None:
                    self.token_refusals.append(name)
                    raise HTTPException(400, f"'{name}' is a required property")
            if (cid, secret) != (self.client_id, self.client_secret):
                raise HTTPException(401, {"error": "invalid_client"})
            tok = secrets.token_hex(16)
            self.tokens[tok] = str(cid)
            return {"access_token": tok, "token_type": "Bearer", "expires_in": 3600}

        def page(items: list[dict[str, Any]], skip: int, limit: int) -> list[dict[str, Any]]:
            out = sorted(items, key=lambda e: e["id"])[skip : skip + limit]
            return [{k: v for k, v in o.items() if not k.startswith("_")} for o in out]

        @app.get("/programs")
        async def programs(
            skip: int = Query(0, ge=0),
            limit: int = Query(50, ge=1, le=50),
            authorization: str | None = Header(None),
        ) -> list[dict[str, Any]]:
            self._client(authorization)
            return page(list(self.programs.values()), skip, limit)

        @app.get("/events")
        async def events(
            skip: int = Query(0, ge=0),
            limit: int = Query(50, ge=1, le=50),
            authorization: str | None = Header(None),
        ) -> list[dict[str, Any]]:
            client = self._client(authorization)
            shown = [e for e in self.events.values() if self._visible(e, client)]
            self.pages_served += 1
            return page(shown, skip, limit)

        @app.get("/vens")
        async def vens(
            venName: str | None = None,
            skip: int = Query(0, ge=0),
            limit: int = Query(50, ge=1, le=50),
            authorization: str | None = Header(None),
        ) -> list[dict[str, Any]]:
            self._client(authorization)
            found = [v for v in self.vens.values() if venName in (None, v["venName"])]
            return page(found, skip, limit)

        @app.post("/vens", status_code=201)
        async def create_ven(request: Request, authorization: str | None = Header(None)) -> Any:
            client = self._client(authorization)
            body = await request.json()
            if not body.get("venName"):
                raise HTTPException(400, "'venName' is a required property")
            if any(v["venName"] == body["venName"] for v in self.vens.values()):
                raise HTTPException(409, "venName exists")
            ven = {**body, "id": self._id("ven"), "objectType": "VEN", "_client": client}
            ven["createdDateTime"] = ven["modificationDateTime"] = self._now()
            self.vens[ven["id"]] = ven
            return {k: v for k, v in ven.items() if not k.startswith("_")}

        def list_resources(ven_id: str | None, skip: int, limit: int) -> list[dict[str, Any]]:
            found = [r for r in self.resources.values() if ven_id in (None, r["venID"])]
            return page(found, skip, limit)

        def create_resource(body: dict[str, Any], ven_id: str) -> dict[str, Any]:
            if not body.get("resourceName"):
                raise HTTPException(400, "'resourceName' is a required property")
            if ven_id not in self.vens:
                raise HTTPException(404, "no such ven")
            resource = {**body, "id": self._id("res"), "objectType": "RESOURCE", "venID": ven_id}
            self.resources[resource["id"]] = resource
            return resource

        if self.version.startswith("3.1"):

            @app.get("/resources")
            async def resources31(
                venID: str | None = None,
                skip: int = Query(0, ge=0),
                limit: int = Query(50, ge=1, le=50),
                authorization: str | None = Header(None),
            ) -> list[dict[str, Any]]:
                self._client(authorization)
                return list_resources(venID, skip, limit)

            @app.post("/resources", status_code=201)
            async def create31(request: Request, authorization: str | None = Header(None)) -> Any:
                self._client(authorization)
                body = await request.json()
                if not body.get("venID"):
                    raise HTTPException(400, "'venID' is a required property")
                return create_resource(body, body["venID"])

        else:

            @app.get("/vens/{ven_id}/resources")
            async def resources(
                ven_id: str,
                skip: int = Query(0, ge=0),
                limit: int = Query(50, ge=1, le=50),
                authorization: str | None = Header(None),
            ) -> list[dict[str, Any]]:
                self._client(authorization)
                return list_resources(ven_id, skip, limit)

            @app.post("/vens/{ven_id}/resources", status_code=201)
            async def create(
                ven_id: str, request: Request, authorization: str | None = Header(None)
            ) -> Any:
                self._client(authorization)
                return create_resource(await request.json(), ven_id)

        @app.post("/reports", status_code=201)
        async def create_report(request: Request, authorization: str | None = Header(None)) -> Any:
            self._client(authorization)
            body = await request.json()
            for name in ("programID", "eventID", "clientName", "resources"):
                if name not in body:
                    raise HTTPException(400, f"'{name}' is a required property")
            for r in body["resources"]:
                if "resourceName" not in r or "intervals" not in r:
                    raise HTTPException(400, "'resourceName' and 'intervals' are required")
            report = {**body, "id": self._id("report"), "createdDateTime": self._now()}
            self.reports.append(report)
            return report

        @app.get("/subscriptions")
        async def subscriptions(
            clientName: str | None = None,
            skip: int = Query(0, ge=0),
            limit: int = Query(50, ge=1, le=50),
            authorization: str | None = Header(None),
        ) -> list[dict[str, Any]]:
            self._client(authorization)
            found = [
                s for s in self.subscriptions.values() if clientName in (None, s["clientName"])
            ]
            return page(found, skip, limit)

        def check_subscription(body: dict[str, Any]) -> None:
            for name in ("clientName", "programID", "objectOperations"):
                if name not in body:
                    raise HTTPException(400, f"'{name}' is a required property")
            for op in body["objectOperations"]:
                for name in ("objects", "operations", "callbackUrl"):
                    if name not in op:
                        raise HTTPException(400, f"'{name}' is a required property")

        @app.post("/subscriptions", status_code=201)
        async def subscribe(request: Request, authorization: str | None = Header(None)) -> Any:
            self._client(authorization)
            body = await request.json()
            check_subscription(body)
            sub = {**body, "id": self._id("sub"), "objectType": "SUBSCRIPTION"}
            self.subscriptions[sub["id"]] = sub
            return sub

        @app.put("/subscriptions/{sub_id}")
        async def resubscribe(
            sub_id: str, request: Request, authorization: str | None = Header(None)
        ) -> Any:
            self._client(authorization)
            if sub_id not in self.subscriptions:
                raise HTTPException(404, "no such subscription")
            body = await request.json()
            check_subscription(body)
            self.subscriptions[sub_id] = {**body, "id": sub_id, "objectType": "SUBSCRIPTION"}
            return self.subscriptions[sub_id]

        @app.get("/reports")
        async def reports(authorization: str | None = Header(None)) -> list[dict[str, Any]]:
            self._client(authorization)
            return self.reports

        return app
