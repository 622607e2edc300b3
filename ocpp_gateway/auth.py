"""Who may connect: station credentials and limits, fed from the bus.

:class:`StationRegistry` keeps the latest ``config.station_credentials`` (password hashes)
and ``config.station_zones`` (phases, voltage, rate unit) records by station id; the
gateway feeds it from an upsert subscription, so an operator's ``gridctl stations import``
takes effect without a restart. :meth:`StationRegistry.check` decides a handshake (Basic
auth, OCPP security profiles 1 and 2) and raises :class:`AuthError` with the HTTP status.

scrypt is deliberately slow (~50 ms); checks run in a thread and a successful
(station, password) pair is remembered against the stored hash, so a reconnect storm after
a network blip costs one hash per station, not one per attempt; at most
``max_pending_verifications`` hashes wait at once, further handshakes get 503.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging

from ocpp_gateway.errors import AuthError
from pipeline import topics
from pipeline.bus import Record
from pipeline.contracts import ContractError, StationCredential, StationZone, decode
from pipeline.secrets import verify_password

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


class StationRegistry:
    """Credentials and zone limits of every known station."""

    def __init__(self, max_pending_verifications: int = 64) -> None:
        self.credentials: dict[str, StationCredential] = {}
        self.zones: dict[str, StationZone] = {}
        self._verified: dict[tuple[str, bytes], str] = {}
        self._max_pending = max_pending_verifications
        self._pending = 0

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
    ) -> None:
        """Accept the handshake, or raise :class:`AuthError` (401, 403, 404 or 503)."""
        cred = self.credentials.get(station_id)
        if cred is None:
            if allow_unknown:
                return
            raise AuthError(404, f"unknown station {station_id!r}")
        wanted_profile = 2 if tls else 1
        if cred.security_profile != wanted_profile:
            raise AuthError(
                403,
                f"station {station_id!r} uses security profile {cred.security_profile}, "
                f"this endpoint serves profile {wanted_profile}",
            )
        pair = parse_basic_auth(authorization)
        if pair is None:
            raise AuthError(401, "missing or malformed Basic credentials")
        user, password = pair
        if user != station_id:
            raise AuthError(401, f"username {user!r} does not match station id")
        key = (station_id, hashlib.sha256(password.encode()).digest())
        if self._verified.get(key) == cred.password_hash:
            return
        if self._pending >= self._max_pending:
            # After a restart every station reconnects at once and each hash costs ~40 ms
            # of CPU; refusing early makes chargers back off instead of timing out in a
            # queue and retrying on top of it.
            raise AuthError(503, "busy verifying credentials; retry later")
        self._pending += 1
        try:
            ok = await asyncio.to_thread(verify_password, password, cred.password_hash)
        finally:
            self._pending -= 1
        if not ok:
            raise AuthError(401, "wrong password")
        self._verified[key] = cred.password_hash
