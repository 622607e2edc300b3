"""Who may connect: station credentials and limits, fed from the bus.

:class:`StationRegistry` keeps the latest ``config.station_credentials`` (password hashes)
and ``config.station_zones`` (phases, voltage, rate unit) records by station id; the
gateway feeds it from an upsert subscription, so an operator's ``gridctl stations import``
takes effect without a restart. :meth:`StationRegistry.check` decides a handshake (Basic
auth, OCPP security profiles 1 and 2) and raises :class:`AuthError` with the HTTP status.

Rules (docs/operations.md, "Charger authentication"):

- an unknown station id and a wrong password get the same answer, 401 "unknown station
  or wrong password", after the same work: an unknown id is verified against a dummy
  hash, so neither the status nor the time tells which ids exist; the wrong-profile 403
  comes only after the password was right;
- failures are counted per source address and per station id (:mod:`.backoff`); past the
  free allowance the next attempts wait, answered 429 with ``Retry-After`` and not
  verified at all, so guessing costs the guesser time and us no CPU;
- scrypt is deliberately slow (~40 ms); checks run in a thread, at most
  ``max_pending_verifications`` at once; further handshakes queue for up to
  ``verify_wait_s`` before a 503. A verified password is remembered (in memory, and as a
  slow digest on disk, :mod:`.verified`), so a reconnect storm after a restart costs
  about a millisecond per station instead of a queue of full checks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import math
from pathlib import Path

from ocpp_gateway.backoff import Backoff
from ocpp_gateway.errors import AuthError
from ocpp_gateway.verified import VerifiedStore
from pipeline import topics
from pipeline.bus import Record
from pipeline.contracts import ContractError, StationCredential, StationZone, decode
from pipeline.secrets import hash_password, verify_password

__all__ = ["StationRegistry", "parse_basic_auth"]

log = logging.getLogger(__name__)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(username, password) from an ``Authorization: Basic ...`` header, else None."""
    if not header:
        return None
    scheme, _, data = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(data.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


_DENIED = "unknown station or wrong password"


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown station ids, so they cost what a wrong password costs."""
    return hash_password("gridctl: no such station", salt=b"\0" * 16)


class StationRegistry:
    """Credentials and zone limits of every known station."""

    def __init__(
        self,
        max_pending_verifications: int = 64,
        *,
        verify_wait_s: float = 10.0,
        state_dir: str | Path | None = None,
        by_source: Backoff | None = None,
        by_station: Backoff | None = None,
    ) -> None:
        self.credentials: dict[str, StationCredential] = {}
        self.zones: dict[str, StationZone] = {}
        self._verified: dict[tuple[str, bytes], str] = {}
        self._slots = asyncio.Semaphore(max_pending_verifications)
        self._verify_wait_s = verify_wait_s
        self.store = VerifiedStore(state_dir)
        self._save_task: asyncio.Task[None] | None = None
        # One misconfigured charger behind a NAT shares its address with the fleet there:
        # the per-address allowance is larger and its wait shorter than per station.
        self.by_source = by_source or Backoff(free=30, base_s=1.0, max_s=60.0)
        self.by_station = by_station or Backoff(free=5, base_s=1.0, max_s=300.0)

    def load(self) -> None:
        """Read the remembered verifications (call once, before serving)."""
        self.store.load()

    async def flush(self) -> None:
        """Write remembered verifications now (at shutdown)."""
        if self._save_task is not None:
            self._save_task.cancel()
            self._save_task = None
        await asyncio.to_thread(self.store.write, self.store.snapshot())

    def _schedule_save(self) -> None:
        # Coalesced: a storm of first-time verifications writes the file about once a
        # second, not once per station.
        if self.store.path is None or (self._save_task and not self._save_task.done()):
            return

        async def later() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.store.write, self.store.snapshot())

        self._save_task = asyncio.create_task(later(), name="verified-credentials-save")

    def apply(self, record: Record) -> None:
        """Fold one upsert record (or tombstone) of the two config topics in."""
        if record.key is None:
            return
        table: dict[str, StationCredential] | dict[str, StationZone]
        model: type[StationCredential] | type[StationZone]
        if record.topic == topics.STATION_CREDENTIALS:
            table, model = self.credentials, StationCredential
        elif record.topic == topics.STATION_ZONES:
            table, model = self.zones, StationZone
        else:
            return
        if record.value is None:
            table.pop(record.key, None)
            return
        try:
            table[record.key] = decode(model, record.value, topic=record.topic)  # type: ignore[assignment]
        except ContractError as exc:
            log.warning("ignoring bad %s record for %s: %s", record.topic, record.key, exc)

    def zone(self, station_id: str) -> StationZone | None:
        return self.zones.get(station_id)

    async def check(
        self,
        station_id: str,
        authorization: str | None,
        *,
        tls: bool,
        allow_unknown: bool = False,
        source: str | None = None,
    ) -> None:
        """Accept the handshake, or raise :class:`AuthError` (401, 403, 429 or 503)."""
        cred = self.credentials.get(station_id)
        if cred is None and allow_unknown:
            return
        source_key = f"addr {source}" if source else None
        wait = max(
            self.by_station.wait(station_id), self.by_source.wait(source_key) if source_key else 0
        )
        if wait > 0:
            raise AuthError(429, "too many failed logins; retry later", math.ceil(wait))
        try:
            await self._verify(station_id, authorization, cred)
        except AuthError as exc:
            if exc.status == 401:
                self.by_station.fail(station_id)
                if source_key:
                    self.by_source.fail(source_key)
            raise
        self.by_station.succeed(station_id)
        if source_key:
            self.by_source.succeed(source_key)
        assert cred is not None
        wanted_profile = 2 if tls else 1
        if cred.security_profile != wanted_profile:
            raise AuthError(
                403,
                f"station {station_id!r} uses security profile {cred.security_profile}, "
                f"this endpoint serves profile {wanted_profile}",
            )

    async def _verify(
        self, station_id: str, authorization: str | None, cred: StationCredential | None
    ) -> None:
        pair = parse_basic_auth(authorization)
        if pair is None:
            raise AuthError(401, "missing or malformed Basic credentials")
        user, password = pair
        if user != station_id:
            raise AuthError(401, "the username must be the station id")
        if cred is None:
            await self._scrypt(password, _dummy_hash())  # the same cost as a wrong password
            raise AuthError(401, _DENIED, log_reason="unknown station")
        key = (station_id, hashlib.sha256(password.encode()).digest())
        if self._verified.get(key) == cred.password_hash:
            return
        stored = cred.password_hash
        if station_id in self.store.digests and await asyncio.to_thread(
            self.store.matches, station_id, password, stored
        ):
            self._verified[key] = stored
            return
        if not await self._scrypt(password, stored):
            raise AuthError(401, _DENIED, log_reason="wrong password")
        self._verified[key] = stored
        self.store.remember(station_id, password, stored)
        self._schedule_save()

    async def _scrypt(self, password: str, stored: str) -> bool:
        try:
            async with asyncio.timeout(self._verify_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            # Only when even the queue is full for seconds: the charger backs off and
            # retries, instead of timing out in a queue and retrying on top of it.
            raise AuthError(503, "busy verifying credentials; retry later", 5) from None
        try:
            return await asyncio.to_thread(verify_password, password, stored)
        finally:
            self._slots.release()
