"""One owner per data directory, and what the owner tells the other commands.

Two ``gridctl run`` on one ``--data-dir`` share one PostgreSQL cluster and one bus log:
the second restarted the first one's server, whose engine then never ticked again while
``/healthz`` said ok (issue 15). So ``run`` takes an exclusive ``flock`` on
``DATA_DIR/gridctl.lock`` (released by the kernel when the process dies, so a crash never
leaves a stale lock) and writes its pid into it; a second ``run`` names that pid.

While it runs, the owner records where it listens in ``DATA_DIR/run.json`` (mode 0600,
no secrets): ``status`` and ``query`` read the embedded database's port from there, and
whether the lock is held tells them if that record is current.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LOCK_FILE = "gridctl.lock"
STATE_FILE = "run.json"


class DataDirBusy(RuntimeError):
    """Another process owns the data directory; the message names its pid."""


class DataDirLock:
    """``acquire()`` or :class:`DataDirBusy`; ``release()`` on the way out."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirBusy(
                f"{self.data_dir} is in use by another gridctl run (pid {holder}); "
                "stop it first or pass another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / STATE_FILE).unlink(missing_ok=True)
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def held(data_dir: Path) -> bool:
    """Whether a live process holds the data directory's lock."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def without_password(url: str) -> str:
    """``url`` with any password removed (run.json holds no secrets)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = (parts.username or "") + "@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{netloc[2]}"))


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), **state}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """What the running owner recorded, or None when no ``gridctl run`` owns the dir."""
    path = data_dir / STATE_FILE
    if not held(data_dir):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
