"""Settings of the DR bridge: API, tokens, OpenADR VENs and the signal mapping.

One frozen dataclass, filled by ``gridctl run`` from flags and ``GRIDCTL_*`` variables;
the defaults work on one machine with nothing else installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dr_bridge.errors import ConfigError

#: SIMPLE level -> (signal type, % reduction). The spec leaves levels "resource-defined";
#: level 3 is a SHED with a 100 % reduction target: the engine may take those stations to 0.
DEFAULT_SIMPLE_LEVELS: dict[int, tuple[str, float]] = {
    1: ("CURTAIL", 20.0),
    2: ("CURTAIL", 50.0),
    3: ("SHED", 100.0),
}


@dataclass(frozen=True)
class OpenADR2Settings:
    """An OpenADR 2.0b VEN (openleadr, HTTP pull)."""

    vtn_url: str
    ven_name: str
    ven_id: str | None = None
    cert: str | None = None
    key: str | None = None
    passphrase: str | None = None
    ca_file: str | None = None
    vtn_fingerprint: str | None = None
    #: program priority for our contract (2.0b's own priority number is not ours to map).
    priority: int = 2
    #: ven_id -> zones it stands for; without an entry a ven_id target means every zone.
    ven_zones: dict[str, list[str]] = field(default_factory=dict)
    #: the shortest sampling period we offer for TELEMETRY_USAGE (the VTN picks its own)
    report_min_period_s: float = 10.0
    #: how often live events are checked for a loss of ability (then oadrCreateOpt)
    recheck_interval_s: float = 30.0


@dataclass(frozen=True)
class OpenADR3Settings:
    """An OpenADR 3 VEN (3.0.1 or 3.1.0) polling with OAuth2 client credentials."""

    vtn_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    #: default: ``<vtn_url>/auth/token``
    token_url: str | None = None
    #: ``form``: client_id and client_secret as form fields (the spec); ``basic``: HTTP Basic
    token_auth: str = "form"
    scope: str | None = None
    poll_interval_s: float = 30.0
    page_size: int = 50
    priority: int = 2
    #: our VEN's name on the VTN; events targeted at it map to the whole VEN.
    ven_name: str | None = None
    #: ``3.0.1`` or ``3.1.0`` (where resources live: under the VEN, or ``/resources``)
    version: str = "3.0.1"
    #: register our VEN object and one resource per zone
    register: bool = True
    #: wait this long after an interval ends before reporting it (the last samples land)
    report_delay_s: float = 10.0
    #: where the VTN can reach our ``/v1/openadr3/notifications`` (subscriptions); None:
    #: polling only
    callback_url: str | None = None


@dataclass(frozen=True)
class BridgeSettings:
    """Everything the bridge needs, flat so ``gridctl run`` maps flags one to one.

    ``data_dir`` holds the revision store and the generated API token. The OpenADR
    VENs run when their VTN URL is set; :attr:`openadr2` and :attr:`openadr3` group
    their settings.
    """

    data_dir: Path = Path(".gridctl")
    host: str = "127.0.0.1"
    port: int = 8080
    #: accepted bearer tokens; empty: the token in <data_dir>/api-token (created if missing)
    tokens: Sequence[str] = ()
    #: zones accepted even without stations (besides those learned from config.station_zones)
    extra_zones: Sequence[str] = ()
    simple_levels: dict[int, tuple[str, float]] = field(
        default_factory=lambda: dict(DEFAULT_SIMPLE_LEVELS)
    )
    #: how long the API waits for the bus to confirm a record before answering 503
    confirm_timeout_s: float = 10.0

    openadr2_vtn_url: str | None = None
    openadr2_ven_name: str | None = None
    openadr2_ven_id: str | None = None
    openadr2_cert: str | None = None
    openadr2_key: str | None = None
    openadr2_passphrase: str | None = None
    openadr2_ca_file: str | None = None
    openadr2_vtn_fingerprint: str | None = None
    #: JSON file {ven_id: [zone, ...]} narrowing what a ven_id target means
    openadr2_mapping_file: str | None = None
    openadr2_priority: int = 2
    openadr2_report_min_period_s: float = 10.0
    openadr2_recheck_interval_s: float = 30.0

    openadr3_vtn_url: str | None = None
    openadr3_client_id: str | None = None
    openadr3_client_secret: str | None = field(default=None, repr=False)
    #: a file holding the client secret (mode 0600 advised), instead of the secret itself
    openadr3_client_secret_file: str | None = None
    openadr3_token_url: str | None = None
    openadr3_token_auth: str = "form"
    openadr3_scope: str | None = None
    openadr3_poll_interval_s: float = 30.0
    openadr3_ven_name: str | None = None
    openadr3_priority: int = 2
    openadr3_version: str = "3.0.1"
    openadr3_register: bool = True
    openadr3_report_delay_s: float = 10.0
    openadr3_callback_url: str | None = None
    #: the engine's database, for the measured load that reports carry (None: no reports)
    database_url: str | None = None

    # Fields left unset fall back to GRIDCTL_<FIELD> environment variables (for example
    # GRIDCTL_OPENADR3_CLIENT_SECRET), so secrets and TLS paths need no command-line flag.
    def _get(self, name: str) -> str | None:
        value = getattr(self, name)
        return value if value is not None else os.environ.get(f"GRIDCTL_{name.upper()}") or None

    @property
    def openadr2(self) -> OpenADR2Settings | None:
        url = self._get("openadr2_vtn_url")
        if not url:
            return None
        mapping = self._get("openadr2_mapping_file")
        return OpenADR2Settings(
            vtn_url=url,
            ven_name=self._get("openadr2_ven_name") or "gridctl",
            ven_id=self._get("openadr2_ven_id"),
            cert=self._get("openadr2_cert"),
            key=self._get("openadr2_key"),
            passphrase=self._get("openadr2_passphrase"),
            ca_file=self._get("openadr2_ca_file"),
            vtn_fingerprint=self._get("openadr2_vtn_fingerprint"),
            priority=self.openadr2_priority,
            ven_zones=load_ven_zones(mapping) if mapping else {},
            report_min_period_s=self.openadr2_report_min_period_s,
            recheck_interval_s=self.openadr2_recheck_interval_s,
        )

    @property
    def openadr3(self) -> OpenADR3Settings | None:
        url = self._get("openadr3_vtn_url")
        if not url:
            return None
        if self.openadr3_token_auth not in ("form", "basic"):
            raise ConfigError("openadr3 token auth: form or basic")
        if self.openadr3_version not in ("3.0.1", "3.1.0"):
            raise ConfigError("openadr3 version: 3.0.1 or 3.1.0")
        if self.openadr3_poll_interval_s <= 0:
            raise ConfigError("openadr3 poll interval: must be positive")
        secret = self._get("openadr3_client_secret")
        secret_file = self._get("openadr3_client_secret_file")
        if secret is None and secret_file:
            secret = read_secret_file(secret_file)
        return OpenADR3Settings(
            vtn_url=url,
            client_id=self._get("openadr3_client_id"),
            client_secret=secret,
            token_url=self._get("openadr3_token_url"),
            token_auth=self.openadr3_token_auth,
            scope=self._get("openadr3_scope"),
            poll_interval_s=self.openadr3_poll_interval_s,
            priority=self.openadr3_priority,
            ven_name=self._get("openadr3_ven_name"),
            version=self.openadr3_version,
            register=self.openadr3_register,
            report_delay_s=self.openadr3_report_delay_s,
            callback_url=self._get("openadr3_callback_url"),
        )


def read_secret_file(path: str | Path) -> str:
    """A secret kept in a file (first line, stripped); ConfigError if it cannot be read.

    The error names the file, never its content."""
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"secret file {path}: {exc.strerror or exc}") from exc
    if not secret:
        raise ConfigError(f"secret file {path} is empty")
    return secret


def load_ven_zones(path: str | Path) -> dict[str, list[str]]:
    """Read a mapping file ``{"ven_id": ["zone", ...], ...}`` (JSON)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"mapping file {path}: {exc}") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(v, list) and all(isinstance(z, str) for z in v) for v in raw.values()
    ):
        raise ConfigError(f"mapping file {path}: expected {{ven_id: [zone, ...]}}")
    return {str(k): list(v) for k, v in raw.items()}
