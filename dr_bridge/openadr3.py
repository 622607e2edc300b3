"""OpenADR 3.0.1 VEN: poll ``GET /events`` with OAuth2 client credentials; hand revisions on.

Each poll reads every page (``skip``/``limit``, at most 50 a page), then per event: a tag
(``modificationDateTime``, else a content hash) different from the stored one is a new
revision (revision number = stored + 1); an event gone from a *complete* listing, or one
whose window shrank to zero, gets RESTORE for what it had. A failed poll changes nothing.

The httpx transport is injectable (tests pass an ASGI transport wrapping a test VTN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from dr_bridge.config import OpenADR3Settings
from dr_bridge.errors import NotConfirmed, VtnError
from dr_bridge.intake import Intake
from dr_bridge.oadr2_map import ZoneView
from dr_bridge.oadr3_map import SOURCE, is_newer, map_event, revision_tag
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
            try:
                r = await self._client.post(
                    url,
                    data={"grant_type": "client_credentials"},
                    auth=(s.client_id, s.client_secret or ""),
                )
                r.raise_for_status()
                body = r.json()
                self._token = str(body["access_token"])
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise VtnError(f"token request to {url} failed: {exc}") from exc
            self._expires = time.monotonic() + max(float(body.get("expires_in", 300)) - 30, 5)
        return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        self._token = None


class OpenADR3Ven:
    """Polls a 3.0.1 VTN every ``poll_interval_s``; ``poll_once()`` for one round."""

    def __init__(
        self,
        settings: OpenADR3Settings,
        intake: Intake,
        zones: ZoneDirectory,
        levels: dict[int, tuple[str, float]],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._intake = intake
        self._zones = ZoneView(zones.is_zone, zones.zone_of, zones.zones)
        self._levels = levels
        self._client = httpx.AsyncClient(transport=transport, timeout=10.0)
        self._tokens = _TokenSource(self._client, settings)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="openadr3-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except (VtnError, NotConfirmed) as exc:
                log.warning("OpenADR 3 poll of %s: %s", self.settings.vtn_url, exc)
            await asyncio.sleep(self.settings.poll_interval_s)

    async def fetch_events(self) -> list[dict[str, Any]]:
        """Every event, all pages; raises :class:`VtnError` unless the listing is complete."""
        s = self.settings
        url = f"{s.vtn_url.rstrip('/')}/events"
        out: list[dict[str, Any]] = []
        skip = 0
        while True:
            page = await self._get(url, {"skip": skip, "limit": s.page_size})
            if not isinstance(page, list):
                raise VtnError(f"GET {url}: expected a JSON array")
            out.extend(e for e in page if isinstance(e, dict) and "id" in e)
            if len(page) < s.page_size:
                return out
            skip += len(page)

    async def _get(self, url: str, params: dict[str, Any]) -> Any:
        for attempt in (1, 2):
            try:
                r = await self._client.get(url, params=params, headers=await self._tokens.header())
            except httpx.HTTPError as exc:
                raise VtnError(f"GET {url}: {exc}") from exc
            if r.status_code == 401 and attempt == 1:
                self._tokens.forget()  # expired or revoked: fetch a new token once
                continue
            if r.status_code != 200:
                raise VtnError(f"GET {url}: HTTP {r.status_code}")
            try:
                return r.json()
            except ValueError as exc:
                raise VtnError(f"GET {url}: not JSON") from exc
        raise VtnError(f"GET {url}: unauthorised")

    async def poll_once(self) -> int:
        """One round: fetch, map new revisions, restore vanished events; records published."""
        events = await self.fetch_events()
        now = datetime.now(UTC)
        store = self._intake.store
        published = 0
        seen: set[str] = set()
        for event in events:
            event_id = str(event["id"])
            seen.add(event_id)
            try:
                tag = revision_tag(event)
                stored = store.event(SOURCE, event_id)
                if stored is not None and not is_newer(tag, stored.tag):
                    continue
                revision = 0 if stored is None else stored.revision + 1
                mapped = map_event(
                    event,
                    modification=revision,
                    ven_name=self.settings.ven_name,
                    zones=self._zones,
                    levels=self._levels,
                    priority=self.settings.priority,
                    now=now,
                )
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("OpenADR 3 event %s cannot be mapped: %s", event_id, exc)
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
        return published
