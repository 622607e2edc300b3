"""OpenADR 2.0b VEN on openleadr: register, receive events, hand revisions to the intake.

openleadr does the protocol (registration, polling, ``oadrCreatedEvent``); this module
only maps (:mod:`dr_bridge.oadr2_map`) and tracks what openleadr does not: an event that
silently disappears from the VTN's list (implied cancellation) is never passed to a
handler, so every ``oadrDistributeEvent`` — which lists *all* of the VEN's events — is
compared with the events we still hold live, and a vanished one gets a RESTORE.

Revisions: key ``("openadr2", event_id)``, revision = modification number. openleadr
de-duplicates within a process; the revision store does it across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from openleadr import OpenADRClient  # type: ignore[import-untyped]

from dr_bridge.config import OpenADR2Settings
from dr_bridge.errors import NotConfirmed
from dr_bridge.intake import Intake
from dr_bridge.oadr2_map import SOURCE, map_event
from dr_bridge.zones import ZoneDirectory

log = logging.getLogger(__name__)


class OpenADR2Ven:
    """``await start()`` registers (retrying in the background if the VTN is away)."""

    def __init__(
        self,
        settings: OpenADR2Settings,
        intake: Intake,
        zones: ZoneDirectory,
        levels: dict[int, tuple[str, float]],
        *,
        retry_interval_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self._intake = intake
        self._zones = zones.view()
        self._levels = levels
        self._retry = retry_interval_s
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.client = self._new_client()

    def _new_client(self) -> OpenADRClient:
        s = self.settings
        client = OpenADRClient(
            ven_name=s.ven_name,
            vtn_url=s.vtn_url,
            ven_id=s.ven_id,
            cert=s.cert,
            key=s.key,
            passphrase=s.passphrase,
            ca_file=s.ca_file,
            vtn_fingerprint=s.vtn_fingerprint,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self.on_event)
        client.add_handler("on_update_event", self.on_event)
        client.add_hook("after_parse_xml", self._after_parse)
        return client

    @property
    def registered(self) -> bool:
        return self.client.registration_id is not None

    async def start(self) -> None:
        await self._run_once()
        if not self.registered:
            self._task = asyncio.create_task(self._keep_trying(), name="openadr2-register")

    async def _run_once(self) -> None:
        try:
            await self.client.run()
        except Exception as exc:  # openleadr raises bare library errors; keep the bridge up
            log.warning("OpenADR 2.0b registration with %s failed: %s", self.settings.vtn_url, exc)
        if self.registered:
            log.info("OpenADR 2.0b VEN %s registered", self.client.ven_id)

    async def _keep_trying(self) -> None:
        while not self.registered:
            await asyncio.sleep(self._retry)
            with contextlib.suppress(Exception):
                if self.client.client_session is not None:
                    await self.client.client_session.close()
            self.client = self._new_client()
            await self._run_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            if self.client.scheduler.running:
                self.client.scheduler.shutdown(wait=False)
            if self.client.client_session is not None:
                await self.client.client_session.close()

    async def poll_now(self) -> None:
        """Poll the VTN once (normally openleadr's scheduler does it every poll period)."""
        await self.client._poll()

    # -- handlers ----------------------------------------------------------------------
    async def on_event(self, event: dict[str, Any]) -> str:
        """openleadr's on_event and on_update_event: map, store, publish; opt in or out."""
        now = datetime.now(UTC)
        descriptor = event["event_descriptor"]
        event_id = descriptor["event_id"]
        mapped = map_event(
            event,
            ven_id=self.client.ven_id,
            zones=self._zones,
            ven_zones=self.settings.ven_zones,
            levels=self._levels,
            priority=self.settings.priority,
            now=now,
        )
        if mapped.opt_out:
            log.warning("opting out of OpenADR event %s: %s", event_id, mapped.reason)
        elif mapped.reason:
            log.info("OpenADR event %s: %s", event_id, mapped.reason)
        async with self._lock:
            try:
                await self._intake.offer_event(
                    SOURCE,
                    event_id,
                    int(descriptor.get("modification_number") or 0),
                    mapped.signals,
                    tag=str(descriptor.get("event_status", "")),
                )
            except NotConfirmed as exc:
                # Stored in the outbox; the publisher keeps retrying. Still our answer.
                log.warning("OpenADR event %s stored, not yet on the bus: %s", event_id, exc)
        return mapped.opt

    async def _after_parse(self, message_type: str, payload: dict[str, Any]) -> None:
        """Implied cancellation: a live event missing from a full oadrDistributeEvent."""
        if message_type != "oadrDistributeEvent":
            return
        present = {e["event_descriptor"]["event_id"] for e in payload.get("events") or []}
        now = datetime.now(UTC)
        store = self._intake.store
        async with self._lock:
            for state in store.events(SOURCE):
                if state.ext_id in present:
                    continue
                live = [
                    s
                    for sid in state.signal_ids
                    if (s := store.latest(sid)) is not None
                    and s.signal.signal_type != "RESTORE"
                    and s.signal.end_ts > now
                ]
                if not live:
                    continue
                log.info("OpenADR event %s vanished from the VTN: restoring", state.ext_id)
                with contextlib.suppress(NotConfirmed):
                    await self._intake.offer_event(
                        SOURCE, state.ext_id, state.revision + 1, [], tag="vanished"
                    )
