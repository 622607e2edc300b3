"""OpenADR 2.0b VEN on openleadr: register, report, receive events, opt in or out.

openleadr does the protocol (registration, polling, ``oadrCreatedEvent``, report
scheduling); this module maps (:mod:`dr_bridge.oadr2_map`) and adds what openleadr does
not do by itself:

- reports: at registration we offer TELEMETRY_USAGE (METADATA, one data point per zone:
  real power in kW, resource id = zone id); when the VTN requests it, openleadr samples
  our callback at the granularity the VTN asked for and sends oadrUpdateReport; the value
  is the zone's measured load now (the engine's ``zone_load``). TELEMETRY_STATUS is not
  offered: openleadr cannot encode an oadrPayloadResourceStatus.
- opt: the answer to an event says whether gridctl can comply (see ``oadr2_map``); when a
  live event we opted into later becomes impossible (its zones lost their stations), an
  oadrCreateOpt optOut is sent, once per event revision.
- implied cancellation: an event that silently disappears from the VTN's list is never
  passed to a handler, so every ``oadrDistributeEvent`` — which lists *all* of the VEN's
  events — is compared with the events we still hold live; a vanished one gets a RESTORE.
- quiet logs: openleadr and its scheduler log every poll at INFO; they are held at WARNING.

Revisions: key ``("openadr2", event_id)``, revision = modification number. openleadr
de-duplicates within a process; the revision store does it across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from openleadr import OpenADRClient  # type: ignore[import-untyped]

from dr_bridge.config import OpenADR2Settings
from dr_bridge.errors import NotConfirmed
from dr_bridge.intake import Intake
from dr_bridge.oadr2_map import SOURCE, map_event
from dr_bridge.telemetry import ZoneLoadReader
from dr_bridge.zones import ZoneDirectory

log = logging.getLogger(__name__)
for _noisy in ("openleadr", "apscheduler"):  # a line per poll and per sample at INFO
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@dataclass
class _Participation:
    """An event we opted into: which revision and zones, and whether we withdrew."""

    modification: int
    zones: list[str]
    end: datetime
    withdrawn: bool = False


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
        load: ZoneLoadReader | None = None,
    ) -> None:
        self.settings = settings
        self._intake = intake
        self._directory = zones
        self._zones = zones.view()
        self._levels = levels
        self._retry = retry_interval_s
        self._load = load
        self._task: asyncio.Task[None] | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._joined: dict[str, _Participation] = {}
        self._load_failed = False
        self._offered: set[str] = set()
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
        self._offered = set(self._zones.all_zones()) if self._load is not None else set()
        if self._load is not None:
            period = timedelta(seconds=s.report_min_period_s)
            for zone in sorted(self._offered):
                client.add_report(
                    callback=partial(self.zone_load_kw, zone),
                    resource_id=zone,
                    measurement="POWER_REAL",
                    report_name="TELEMETRY_USAGE",
                    report_specifier_id="gridctl-telemetry-usage",
                    r_id=f"load-{zone}",
                    unit="W",
                    scale="k",
                    sampling_rate=period,
                    report_duration=timedelta(hours=1),
                )
        return client

    async def zone_load_kw(self, zone: str) -> list[tuple[datetime, float]]:
        """TELEMETRY_USAGE sample of one zone: its measured load now, in kW.

        No sample when the engine cannot be read (a missing value, never a made-up 0)."""
        assert self._load is not None
        try:
            kw = (await self._load.load_now([zone])).get(zone)
        except Exception as exc:  # the database is away: skip this sample
            if not self._load_failed:
                log.warning("OpenADR 2.0b report: cannot read zone load: %s", exc)
            self._load_failed = True
            return []
        self._load_failed = False
        return [] if kw is None else [(datetime.now(UTC), round(kw, 3))]

    @property
    def registered(self) -> bool:
        return self.client.registration_id is not None

    async def start(self) -> None:
        await self._run_once()
        if not self.registered:
            self._task = asyncio.create_task(self._keep_trying(), name="openadr2-register")
        self._recheck = asyncio.create_task(self._recheck_loop(), name="openadr2-recheck")

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recheck_interval_s)
            with contextlib.suppress(Exception):  # logged inside; keep checking
                await self.refresh_reports()
                await self.recheck()

    async def refresh_reports(self) -> bool:
        """Zones appeared or went away since we offered reports: register again with the
        new set (a new openleadr client; the VTN keeps our ven_id). True if it did."""
        if self._load is None or not self.registered:
            return False
        if set(self._zones.all_zones()) == self._offered:
            return False
        log.info("OpenADR 2.0b: zones changed, registering their reports again")
        await self._close_client()
        self.client = self._new_client()
        await self._run_once()
        return True

    async def recheck(self, now: datetime | None = None) -> list[str]:
        """Withdraw (oadrCreateOpt optOut) from live events whose zones lost every station.

        Returns the event ids withdrawn from now."""
        now = now or datetime.now(UTC)
        out = []
        for event_id, p in list(self._joined.items()):
            if p.end <= now:
                del self._joined[event_id]
                continue
            lost = [z for z in p.zones if self._zones.capacity_kw(z) is None]
            if p.withdrawn or not lost:
                continue
            try:
                await self.client.create_opt(
                    "optOut",
                    "notParticipating",
                    [{"ven_id": self.client.ven_id}],
                    event_id=event_id,
                    modification_number=p.modification,
                )
            except Exception as exc:
                log.warning("OpenADR 2.0b: oadrCreateOpt for %s failed: %s", event_id, exc)
                continue
            p.withdrawn = True
            log.warning("opted out of OpenADR event %s: no stations left in %s", event_id, lost)
            out.append(event_id)
        return out

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
        for task in (self._task, self._recheck):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._close_client()

    async def _close_client(self) -> None:
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
        if mapped.opt == "optIn" and mapped.signals:
            self._joined[event_id] = _Participation(
                int(descriptor.get("modification_number") or 0),
                sorted({s.zone_id for s in mapped.signals}),
                max(s.end_ts for s in mapped.signals),
            )
        else:
            self._joined.pop(event_id, None)
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
