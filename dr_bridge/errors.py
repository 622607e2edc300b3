"""Errors of the DR bridge, under one root.

::

    BridgeError
    ├── ConfigError (ValueError)        bad settings or mapping file; fix the configuration
    ├── SignalInvalid (ValueError)      a request or event that does not make a valid signal;
    │                                   ``errors`` lists (field, reason) pairs -> HTTP 422
    ├── StaleRevision                   a modification not newer than the stored one -> HTTP 409
    ├── SignalNotFound (KeyError)       no signal with that id -> HTTP 404
    ├── StoreUnusable (OSError)         the revision store cannot be opened; names the file
    ├── StoredRecordInvalid             a stored revision no longer decodes (written by an
    │                                   older release, or damaged) -> reported by id, HTTP 409
    ├── NotConfirmed                    the record is stored but the bus has not confirmed it
    │                                   yet; the publisher keeps retrying -> HTTP 503
    └── VtnError                        a VTN answered badly or not at all; the VEN retries

Callers at an edge (the API, a VEN) translate these into their protocol; nothing else
escapes the package.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every DR bridge error."""


class ConfigError(BridgeError, ValueError):
    """The bridge's settings or a mapping file are wrong."""


class SignalInvalid(BridgeError, ValueError):
    """A request or event that does not make a valid signal.

    ``errors`` is a list of ``(field, reason)``; every bad field is named, not just the first.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))


class StaleRevision(BridgeError):
    """A modification lower than or equal to the stored one, with different content."""

    def __init__(self, signal_id: str, stored: int, offered: int) -> None:
        self.signal_id = signal_id
        self.stored = stored
        self.offered = offered
        super().__init__(
            f"signal {signal_id}: modification {offered} is not newer than stored {stored}"
        )


class SignalNotFound(BridgeError, KeyError):
    """No signal with that id is known."""


class StoreUnusable(BridgeError, OSError):
    """The revision store cannot be opened or read (damaged, unreadable); names the file."""


class StoredRecordInvalid(BridgeError):
    """The stored latest revision of a signal does not decode; it is reported, not used."""

    def __init__(self, signal_id: str, modification: int, reason: str) -> None:
        self.signal_id = signal_id
        self.modification = modification
        self.reason = reason
        super().__init__(
            f"stored revision {modification} of signal {signal_id!r} is unreadable: {reason}"
        )


class NotConfirmed(BridgeError):
    """Stored, but not yet confirmed by the bus; it stays queued and is retried."""


class VtnError(BridgeError):
    """A VTN could not be reached or answered something we cannot use."""
