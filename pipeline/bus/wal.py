"""The write-ahead log of :class:`~pipeline.bus.LocalBus`: one JSON line per record.

A line is written whole and fsynced before its publish resolves, so only the last line can
be torn by a crash (kill -9, power cut), and that line was never acknowledged. Recovery on
start therefore cuts the file at the end of the last whole record, says so once (file,
offset, bytes dropped) and goes on: a restart must never depend on hand-editing the log.

A line that is not a record in the middle of the file (disk damage, or a log written by an
older gridctl that appended onto a torn line) is skipped with a warning naming its offset;
a whole record found after a torn prefix on the same line is kept, since it was
acknowledged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from pipeline.bus.base import BusError, Message

log = logging.getLogger("pipeline.bus")

#: How every line starts (``json.dumps`` with default separators, key ``t`` first).
_RECORD_START = b'{"t": '


class WalError(BusError):
    """The log cannot be read or repaired; the message names the file."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One record as the log keeps it."""

    topic: str
    key: str | None
    value: bytes | None
    ts_ms: int


_string = msgspec.json.Encoder().encode


def encode(m: Message, ts_ms: int) -> bytes:
    """The log line of one record, newline included.

    The same JSON object as ``json.dumps({"t": ..., "k": ..., "v": ..., "ts": ...})``
    (key ``t`` first, default separators, so :data:`_RECORD_START` still finds it),
    built from msgspec-encoded strings: a third of the cost, on every reading acked.
    msgspec escapes control characters, so a line never holds a raw newline.
    """
    key = b"null" if m.key is None else _string(m.key)
    value = b"null" if m.value is None else b'"' + base64.b64encode(m.value) + b'"'
    return b"".join(
        (_RECORD_START, _string(m.topic), b', "k": ', key, b', "v": ', value,
         b', "ts": ', str(ts_ms).encode(), b"}\n")
    )  # fmt: skip


def _parse(line: bytes) -> Entry | None:
    """The record of one whole line, or None when it is not one."""
    if not line.endswith(b"\n"):
        return None
    try:
        data = json.loads(line)
        value = data["v"]
        entry = Entry(
            data["t"],
            data["k"],
            None if value is None else base64.b64decode(value, validate=True),
            int(data["ts"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not isinstance(entry.topic, str) or not (entry.key is None or isinstance(entry.key, str)):
        return None
    return entry


def _salvage(line: bytes) -> tuple[int, Entry] | None:
    """A whole record after a torn prefix on one line: ``(prefix length, record)``."""
    at = line.rfind(_RECORD_START, 1)
    if at <= 0:
        return None
    entry = _parse(line[at:])
    return None if entry is None else (at, entry)


def recover(path: Path) -> list[Entry]:
    """Every whole record of the log at ``path``, after cutting a torn tail off the file.

    Raises :class:`WalError` (naming the file) when it cannot be read or truncated.
    """
    if not path.exists():
        return []
    entries: list[Entry] = []
    pos = good_end = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                start, pos = pos, pos + len(line)
                entry = _parse(line)
                if entry is None and line.endswith(b"\n"):
                    salvaged = _salvage(line)
                    if salvaged is not None:
                        skipped, entry = salvaged
                        log.warning(
                            "bus log %s: %d torn bytes at offset %d before a whole record; "
                            "kept the record, skipped the torn bytes",
                            path,
                            skipped,
                            start,
                        )
                if entry is None:
                    continue
                if start > good_end:
                    log.warning(
                        "bus log %s: skipped %d bytes at offset %d that are not a record",
                        path,
                        start - good_end,
                        good_end,
                    )
                entries.append(entry)
                good_end = pos
        if pos > good_end:
            _truncate(path, good_end)
            log.warning(
                "bus log %s: torn tail cut at offset %d (%d bytes dropped: a write that "
                "was never acknowledged)",
                path,
                good_end,
                pos - good_end,
            )
    except OSError as exc:
        raise WalError(f"bus log {path}: {exc.strerror or exc}") from exc
    return entries


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
