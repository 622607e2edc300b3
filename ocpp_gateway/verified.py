"""Credentials verified before, remembered across restarts (``verified-credentials.json``).

scrypt costs ~40 ms of CPU per check on purpose. After a gateway restart the whole fleet
reconnects at once: 10,000 stations would need minutes of hashing, and chargers that time
out retry on top of the queue. So each station's last verified password is remembered as
a PBKDF2-SHA256 digest (2,000 rounds, ~1 ms; salted with the station id and its stored
scrypt hash, so a changed password or a new hash invalidates it) in a file of mode 0600 in
a 0700 directory. Proving a password against it costs a thousandth of a full check, and
the digest is still far slower to attack than the fast hash it replaces in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from pathlib import Path

__all__ = ["VerifiedStore", "digest"]

log = logging.getLogger(__name__)

FILE = "verified-credentials.json"
_ROUNDS = 2000


def digest(station_id: str, password: str, stored_hash: str) -> str:
    salt = f"{station_id}\0{stored_hash}".encode()
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ROUNDS).hex()


class VerifiedStore:
    """station id -> digest of its last verified password; ``path`` None keeps it in memory."""

    def __init__(self, directory: str | Path | None) -> None:
        self.path = Path(directory) / FILE if directory is not None else None
        self.digests: dict[str, str] = {}
        # Writes run in a thread while the event loop keeps verifying: each writes a copy
        # taken on the loop (iterating the live dict there raised "changed size during
        # iteration" under a connect storm), one at a time, never an older copy last.
        self._lock = threading.Lock()
        self._taken = 0
        self._written = 0

    def load(self) -> None:
        """Read the file if there is one; an unreadable file is ignored (full checks)."""
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s (every station is verified afresh): %s", self.path, exc)
            return
        if isinstance(data, dict):
            self.digests = {k: v for k, v in data.items() if isinstance(v, str)}

    def matches(self, station_id: str, password: str, stored_hash: str) -> bool:
        known = self.digests.get(station_id)
        if known is None:
            return False
        return hmac.compare_digest(known, digest(station_id, password, stored_hash))

    def remember(self, station_id: str, password: str, stored_hash: str) -> None:
        self.digests[station_id] = digest(station_id, password, stored_hash)

    def snapshot(self) -> tuple[int, dict[str, str]]:
        """A numbered copy of the digests, taken where they change (the event loop)."""
        self._taken += 1
        return self._taken, dict(self.digests)

    def save(self) -> None:
        """Write the digests now, from the thread that changes them."""
        self.write(self.snapshot())

    def write(self, snapshot: tuple[int, dict[str, str]]) -> None:
        """Write a snapshot atomically (0600, directory 0700), unless a newer one was
        written already; safe from any thread; logs and goes on on failure."""
        number, digests = snapshot
        if self.path is None:
            return
        with self._lock:
            if number <= self._written:
                return
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump(digests, f, separators=(",", ":"))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                self._written = number
            except OSError as exc:
                log.warning("cannot write %s: %s", self.path, exc)
