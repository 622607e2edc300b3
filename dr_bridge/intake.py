"""One way in for every source: decide whether a revision moves forward, store, publish.

The API, the OpenADR 2.0b VEN and the OpenADR 3 VEN all end here. A revision that does
not move forward publishes nothing (a restart, a repeated poll, a re-POST); one that does
is committed to the :class:`RevisionStore` first and then confirmed on the bus by the
:class:`Publisher`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from dr_bridge.errors import SignalNotFound, StaleRevision
from dr_bridge.locks import KeyedLock
from dr_bridge.models import SignalRequest
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore, StoredSignal, Unreadable, restore_of
from pipeline.contracts import DemandResponseSignal

API_SOURCE = "api"


class Intake:
    """Turns revisions of events into confirmed records, exactly once per revision."""

    def __init__(
        self, store: RevisionStore, publisher: Publisher, confirm_timeout_s: float = 10.0
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.confirm_timeout_s = confirm_timeout_s
        # Decide-store-publish of one signal or event runs one at a time (two concurrent
        # POSTs of a new id must not both see "nothing stored").
        self._locks = KeyedLock()

    async def offer_event(
        self,
        source: str,
        ext_id: str,
        revision: int,
        signals: list[DemandResponseSignal],
        *,
        tag: str = "",
        content_hash: str = "",
    ) -> list[DemandResponseSignal]:
        """A VEN saw revision ``revision`` of event ``ext_id``: the complete signal set.

        Returns the records published (none when the revision is not newer than the
        stored one). Signals of the previous revision missing now get a RESTORE.
        """
        stored = self.store.event(source, ext_id)
        if stored is not None and revision <= stored.revision:
            return []
        # One utility event, one baseline: its intervals carry the event's identity.
        event_id = f"{source}:{ext_id}"
        signals = [
            s if s.event_id else msgspec.structs.replace(s, event_id=event_id) for s in signals
        ]
        records = self.store.commit_revision(source, ext_id, revision, tag, content_hash, signals)
        await self.publisher.send(records, self.confirm_timeout_s)
        return records

    # -- the HTTP API ------------------------------------------------------------------
    async def submit(
        self, request: SignalRequest, now: datetime | None = None
    ) -> tuple[DemandResponseSignal, bool]:
        """Store and publish an API signal; ``(signal, created)``.

        Re-sending the same ``signal_id`` and modification (or no modification) with the
        same content returns the stored revision (``created`` False). A modification not
        newer than the stored one with other content raises :class:`StaleRevision`.
        Without a modification, changed content becomes the next modification.
        """
        now = now or datetime.now(UTC)
        signal_id = request.signal_id or uuid.uuid4().hex
        async with self._locks((API_SOURCE, signal_id)):
            return await self._submit(request, signal_id, now)

    async def _submit(
        self, request: SignalRequest, signal_id: str, now: datetime
    ) -> tuple[DemandResponseSignal, bool]:
        content = request.content_hash()
        stored = self.store.event(API_SOURCE, signal_id)
        modification = request.modification
        if stored is not None:
            same = stored.content_hash == content
            if same and modification in (None, stored.revision):
                return await self._confirmed(signal_id), False
            if modification is None:
                modification = stored.revision + 1
            elif modification <= stored.revision:
                raise StaleRevision(signal_id, stored.revision, modification)
        elif self.store.latest(signal_id) is not None:
            # The id belongs to a signal of another source (an OpenADR event).
            latest = self.store.latest(signal_id)
            assert latest is not None
            raise StaleRevision(signal_id, latest.signal.modification, modification or 0)
        signal = request.to_signal(signal_id, modification or 0, now, API_SOURCE)
        records = self.store.commit_revision(
            API_SOURCE, signal_id, signal.modification, "", content, [signal]
        )
        await self.publisher.send(records, self.confirm_timeout_s)
        return signal, True

    async def cancel(self, signal_id: str) -> tuple[DemandResponseSignal, bool]:
        """End a signal of any source with a RESTORE revision; ``(restore, created)``."""
        async with self._locks((API_SOURCE, signal_id)):
            return await self._cancel(signal_id)

    async def _cancel(self, signal_id: str) -> tuple[DemandResponseSignal, bool]:
        latest = self.store.latest_checked(signal_id)
        if latest is None:
            raise SignalNotFound(signal_id)
        if latest.signal.signal_type == "RESTORE":
            return await self._confirmed(signal_id), False
        modification = latest.signal.modification + 1
        restore = restore_of(latest.signal, modification)
        # An API signal's revision is its modification, so a later POST must be newer.
        # An OpenADR event keeps the VTN's numbering: the VTN, not us, revises it.
        bump = latest.signal.source == API_SOURCE
        self.store.add_record(latest.signal.source, latest.ext_id, restore, bump_revision=bump)
        await self.publisher.send([restore], self.confirm_timeout_s)
        return restore, True

    async def _confirmed(self, signal_id: str) -> DemandResponseSignal:
        latest = self.store.latest(signal_id)
        assert latest is not None
        if not latest.confirmed:
            await self.publisher.send([latest.signal], self.confirm_timeout_s)
        return latest.signal

    # -- reads -------------------------------------------------------------------------
    def get(self, signal_id: str) -> StoredSignal:
        latest = self.store.latest_checked(signal_id)
        if latest is None:
            raise SignalNotFound(signal_id)
        return latest

    def list(self, active: bool = False, now: datetime | None = None) -> list[StoredSignal]:
        """Latest revision of every signal; ``active``: not RESTOREd and not yet ended."""
        return self.list_all(active, now)[0]

    def list_all(
        self, active: bool = False, now: datetime | None = None
    ) -> tuple[list[StoredSignal], list[Unreadable]]:
        """:meth:`list` and the stored revisions that do not decode (active or not)."""
        now = now or datetime.now(UTC)
        out, unreadable = self.store.latest_all_checked()
        if active:
            out = [s for s in out if s.signal.signal_type != "RESTORE" and s.signal.end_ts > now]
        return out, unreadable
