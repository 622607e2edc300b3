"""OpenADR 3 VEN (3.0.1 and 3.1.0): register, read programs and events, report back.

Each round (every ``poll_interval_s``):

1. make sure our VEN object exists (found by ``venName``, else created) and has one
   resource per zone, with the zone's capacity as an attribute (3.0.1 under
   ``/vens/{id}/resources``, 3.1.0 under ``/resources``). A VTN may show zone-targeted
   events only to a registered VEN. Failure is logged; polling goes on.
2. read every program and every event (all pages, at most 50 a page);
3. per event: a revision tag (modification time plus content hash) other than the stored
   one is a new revision; an event gone from a *complete* listing, or whose window shrank
   to zero, gets RESTORE for what it had;
4. send the reports the events' ``reportDescriptors`` ask for, once each, from the zones'
   measured load (:mod:`dr_bridge.oadr3_report`).

With ``callback_url`` set, the VEN also subscribes to each program's events; the VTN's
callback (``/v1/openadr3/notifications``, authenticated by the token of the subscription)
wakes the loop for an immediate round, and polling stays as the fallback.

A failed round changes nothing. Tokens: OAuth2 client credentials as the spec's form fields
(``client_id``, ``client_secret``), or HTTP Basic (``token_auth="basic"``); one fresh token
on a 401. A VTN writing timestamps without offset is read as UTC, with one warning.
The httpx transport is injectable (tests pass an ASGI transport wrapping a test VTN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from dr_bridge.config import OpenADR3Settings
from dr_bridge.errors import NotConfirmed, VtnError
from dr_bridge.intake import Intake
from dr_bridge.oadr3_map import (
    SOURCE,
    WHOLE_VEN,
    interval_windows,
    is_newer,
    map_event,
    naive_timestamps,
    revision_tag,
    target_zones,
)
from dr_bridge.oadr3_report import DueReport, Window, due_reports, report_body
from dr_bridge.report_log import ReportLog
from dr_bridge.telemetry import Measured, ZoneLoadReader
from dr_bridge.zones import ZoneDirectory

log = logging.getLogger(__name__)


class _TokenSource:
    """OAuth2 client-credentials bearer tokens, cached until shortly before they expire."""

    def __init__(self, client: httpx.AsyncClient, settings: OpenADR3Settings) -> None:
        self._client = client
        self._settings = settings
        self._token: str | None = None
        self._expires = 0.0

    async def header(self) -> dict[str, str]:
        s = self._settings
        if not s.client_id:
            return {}
        if self._token is None or time.monotonic() >= self._expires:
            url = s.token_url or f"{s.vtn_url.rstrip('/')}/auth/token"
            form = {"grant_type": "client_credentials"}
            auth: tuple[str, str] | None = None
            if s.token_auth == "basic":
                auth = (s.client_id, s.client_secret or "")
            else:  # the spec's clientCredentialRequest: both as form fields
                form |= {"client_id": s.client_id, "client_secret": s.client_secret or ""}
            if s.scope:
                form["scope"] = s.scope
            try:
                r = await self._client.post(url, data=form, auth=auth)
            except httpx.HTTPError as exc:
                raise VtnError(f"token request to {url} failed: {exc}") from exc
            if r.status_code != 200:
                # the body names the problem (e.g. a missing field); never the secret
                raise VtnError(f"token request to {url}: HTTP {r.status_code} {r.text[:200]}")
            try:
                body = r.json()
                self._token = str(body["access_token"])
                lifetime = float(body.get("expires_in") or 300)
            except (ValueError, KeyError, TypeError) as exc:
                raise VtnError(f"token request to {url}: no access_token in the answer") from exc
            self._expires = time.monotonic() + max(lifetime - 30, 5)
        return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        self._token = None


class OpenADR3Ven:
    """Polls a 3.x VTN every ``poll_interval_s``; ``poll_once()`` for one round."""

    def __init__(
        self,
        settings: OpenADR3Settings,
        intake: Intake,
        zones: ZoneDirectory,
        levels: dict[int, tuple[str, float]],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        load: ZoneLoadReader | None = None,
    ) -> None:
        self.settings = settings
        self._intake = intake
        self._directory = zones
        self._zones = zones.view()
        self._levels = levels
        self._load = load
        self._client = httpx.AsyncClient(transport=transport, timeout=10.0)
        self._tokens = _TokenSource(self._client, settings)
        self._task: asyncio.Task[None] | None = None
        self._reports = ReportLog(intake.store.path)
        self._warned: set[str] = set()
        self._wake = asyncio.Event()
        #: the bearer token our subscriptions give the VTN for its callbacks
        self.callback_token = secrets.token_urlsafe(32)
        #: program id -> our subscription's id on the VTN
        self.subscriptions: dict[str, str] = {}
        #: our VEN object's id on the VTN, once registered
        self.ven_id: str | None = None
        #: zone -> resource id on the VTN
        self.resources: dict[str, str] = {}

    @property
    def _base(self) -> str:
        return self.settings.vtn_url.rstrip("/")

    @property
    def _ven_name(self) -> str:
        return self.settings.ven_name or "gridctl"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="openadr3-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
        self._reports.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except (VtnError, NotConfirmed) as exc:
                self._warn_once(str(exc), "OpenADR 3 poll of %s: %s", self.settings.vtn_url, exc)
            # the next poll: after the poll period, or at once when the VTN calls back
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            self._wake.clear()

    def notify(self) -> None:
        """The VTN says something changed (a subscription callback): poll now."""
        self._wake.set()

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        """Warn once per distinct problem; repeats of it go to DEBUG (quiet logs)."""
        if key in self._warned:
            log.debug(msg, *args)
        else:
            self._warned.add(key)
            log.warning(msg, *args)

    # -- HTTP --------------------------------------------------------------------------
    async def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        url = f"{self._base}{path}"
        for attempt in (1, 2):
            try:
                r = await self._client.request(
                    method, url, params=params, json=body, headers=await self._tokens.header()
                )
            except httpx.HTTPError as exc:
                raise VtnError(f"{method} {url}: {exc}") from exc
            if r.status_code == 401 and attempt == 1:
                self._tokens.forget()  # expired or revoked: fetch a new token once
                continue
            if r.status_code not in (200, 201):
                raise VtnError(f"{method} {url}: HTTP {r.status_code} {r.text[:200]}")
            try:
                return r.json()
            except ValueError as exc:
                raise VtnError(f"{method} {url}: not JSON") from exc
        raise VtnError(f"{method} {url}: unauthorised")

    async def _list(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every object of a collection, all pages; VtnError unless complete."""
        out: list[dict[str, Any]] = []
        skip = 0
        size = self.settings.page_size
        while True:
            page = await self._call(
                "GET", path, params={**(params or {}), "skip": skip, "limit": size}
            )
            if not isinstance(page, list):
                raise VtnError(f"GET {path}: expected a JSON array")
            out.extend(e for e in page if isinstance(e, dict) and "id" in e)
            if len(page) < size:
                return out
            skip += len(page)

    async def fetch_events(self) -> list[dict[str, Any]]:
        return await self._list("/events")

    # -- registration ------------------------------------------------------------------
    async def register(self) -> None:
        """Our VEN object and one resource per zone (VtnError if the VTN refuses)."""
        name = self._ven_name
        if self.ven_id is None:
            found = [
                v for v in await self._list("/vens", {"venName": name}) if v.get("venName") == name
            ]
            if found:
                self.ven_id = str(found[0]["id"])
            else:
                created = await self._call(
                    "POST", "/vens", body={"objectType": "VEN", "venName": name}
                )
                self.ven_id = str(created["id"])
                log.info("OpenADR 3: VEN %s registered as %s", name, self.ven_id)
        v31 = self.settings.version.startswith("3.1")
        path = "/resources" if v31 else f"/vens/{self.ven_id}/resources"
        params = {"venID": self.ven_id} if v31 else None
        if not self.resources:
            for r in await self._list(path, params):
                if not v31 or str(r.get("venID")) == self.ven_id:
                    self.resources[str(r.get("resourceName"))] = str(r["id"])
        for zone in sorted(self._zones.all_zones()):
            if zone in self.resources:
                continue
            body: dict[str, Any] = {"objectType": "RESOURCE", "resourceName": zone}
            capacity = self._zones.capacity_kw(zone)
            if capacity is not None:
                body["attributes"] = [{"type": "MAX_POWER_CONSUMPTION", "values": [capacity]}]
            if v31:
                body |= {"venID": self.ven_id, "targets": [zone]}
            else:
                body["targets"] = [{"type": "GROUP", "values": [zone]}]
            created = await self._call("POST", path, body=body)
            self.resources[zone] = str(created["id"])
            log.info("OpenADR 3: resource %s registered", zone)

    # -- one round ---------------------------------------------------------------------
    async def poll_once(self) -> int:
        """One round: register, fetch, map new revisions, restore vanished events, report.

        Returns the records published."""
        if self.settings.register:
            try:
                await self.register()
            except (VtnError, KeyError, TypeError) as exc:
                self._warn_once("register", "OpenADR 3 registration with %s: %s", self._base, exc)
        programs = await self._programs()
        if self.settings.callback_url:
            try:
                await self.subscribe(programs)
            except (VtnError, KeyError, TypeError) as exc:
                self._warn_once("subscribe", "OpenADR 3 subscription at %s: %s", self._base, exc)
        events = await self.fetch_events()
        now = datetime.now(UTC)
        store = self._intake.store
        published = 0
        seen: set[str] = set()
        for event in events:
            event_id = str(event["id"])
            seen.add(event_id)
            if naive_timestamps(event):
                self._warn_once(
                    "naive-ts",
                    "OpenADR 3 VTN %s writes timestamps without offset (%s): read as UTC",
                    self._base,
                    naive_timestamps(event)[0],
                )
            try:
                tag = revision_tag(event)
                stored = store.event(SOURCE, event_id)
                if stored is not None and not is_newer(tag, stored.tag):
                    continue
                revision = 0 if stored is None else stored.revision + 1
                mapped = map_event(
                    event,
                    modification=revision,
                    ven_name=self._ven_name,
                    zones=self._zones,
                    levels=self._levels,
                    priority=self.settings.priority,
                    now=now,
                    program=programs.get(str(event.get("programID"))),
                )
            except (ValueError, KeyError, TypeError) as exc:
                self._warn_once(
                    f"map:{event_id}", "OpenADR 3 event %s cannot be mapped: %s", event_id, exc
                )
                continue
            if mapped.reason:
                log.info("OpenADR 3 event %s: %s", event_id, mapped.reason)
            published += len(
                await self._intake.offer_event(SOURCE, event_id, revision, mapped.signals, tag=tag)
            )
        for state in store.events(SOURCE):
            if state.ext_id in seen or state.tag == "deleted":
                continue
            log.info("OpenADR 3 event %s is gone from the VTN: restoring", state.ext_id)
            published += len(
                await self._intake.offer_event(
                    SOURCE, state.ext_id, state.revision + 1, [], tag="deleted"
                )
            )
        await self.send_reports(events, programs, now)
        return published

    async def subscribe(self, programs: dict[str, dict[str, Any]]) -> None:
        """One subscription per program to its events (create, update, delete), calling
        back ``callback_url`` with our token. An existing one of ours (same client name,
        program and URL) is updated with this process's token instead of duplicated."""
        url = self.settings.callback_url
        mine: dict[str, dict[str, Any]] | None = None
        for program_id in sorted(set(programs) - set(self.subscriptions)):
            if mine is None:  # read what we subscribed earlier (another process), once
                mine = {}
                for sub in await self._list("/subscriptions", {"clientName": self._ven_name}):
                    urls = {o.get("callbackUrl") for o in sub.get("objectOperations") or []}
                    if sub.get("clientName") == self._ven_name and url in urls:
                        mine[str(sub.get("programID"))] = sub
            body = {
                "objectType": "SUBSCRIPTION",
                "clientName": self._ven_name,
                "programID": program_id,
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "callbackUrl": url,
                        "bearerToken": self.callback_token,
                    }
                ],
            }
            if program_id in mine:
                sub_id = str(mine[program_id]["id"])
                await self._call("PUT", f"/subscriptions/{sub_id}", body=body)
            else:
                sub_id = str((await self._call("POST", "/subscriptions", body=body))["id"])
            self.subscriptions[program_id] = sub_id
            log.info("OpenADR 3: subscribed to the events of program %s", program_id)

    async def _programs(self) -> dict[str, dict[str, Any]]:
        """Programs by id (units and targets events inherit); {} if the VTN has none."""
        try:
            return {str(p["id"]): p for p in await self._list("/programs")}
        except VtnError as exc:
            self._warn_once("programs", "OpenADR 3: cannot read programs: %s", exc)
            return {}

    # -- reports -----------------------------------------------------------------------
    def _narrow(self, targets: list[Any]) -> list[str]:
        zones, _ = target_zones({"targets": targets}, self._ven_name, self._zones)
        return sorted(self._zones.all_zones()) if zones == [WHOLE_VEN] else zones

    async def send_reports(
        self, events: list[dict[str, Any]], programs: dict[str, dict[str, Any]], now: datetime
    ) -> int:
        """POST every due report not yet sent; returns how many the VTN accepted."""
        sent = 0
        delay = timedelta(seconds=self.settings.report_delay_s)
        for event in events:
            if not event.get("reportDescriptors"):
                continue
            event_id = str(event["id"])
            program = programs.get(str(event.get("programID")))
            try:
                found, _ = target_zones(event, self._ven_name, self._zones, program)
                zones = sorted(self._zones.all_zones()) if found == [WHOLE_VEN] else found
                windows = [
                    Window(int(i.get("id", n)), start, end)
                    for n, (i, (start, end)) in enumerate(
                        zip(
                            event.get("intervals") or [],
                            interval_windows(event, program),
                            strict=True,
                        )
                    )
                    if end > start
                ]
            except (ValueError, KeyError, TypeError):
                continue  # already logged when the event was mapped
            due, refused = due_reports(event, windows, zones, now, delay, self._narrow)
            for why in refused:
                self._warn_once(f"report:{event_id}:{why}", "OpenADR 3 event %s: %s", event_id, why)
            for report in due:
                if self._reports.sent(SOURCE, report.key):
                    continue
                if await self._send_report(event, report):
                    sent += 1
        return sent

    async def _send_report(self, event: dict[str, Any], report: DueReport) -> bool:
        if self._load is None:
            self._warn_once(
                "no-load", "OpenADR 3: reports requested but no measured load (no database)"
            )
            return False
        measured: dict[tuple[str, int], Measured | None] = {}
        try:
            for zone in report.zones:
                for w in report.windows:
                    measured[(zone, w.interval_id)] = await self._load.window(zone, w.start, w.end)
        except Exception as exc:  # the database is away: retry next round
            self._warn_once("load", "OpenADR 3: cannot read measured load: %s", exc)
            return False
        body = report_body(event, report, self._ven_name, measured)
        try:
            await self._call("POST", "/reports", body=body)
        except VtnError as exc:
            self._warn_once(
                f"post:{report.key}", "OpenADR 3 report %s refused: %s", report.key, exc
            )
            return False
        self._reports.mark(SOURCE, report.key)
        log.info("OpenADR 3 report %s sent", report.key)
        return True
