"""Settings of the DR bridge: API, tokens, OpenADR VENs and the signal mapping.

One frozen dataclass, filled by ``gridctl run`` from flags and ``GRIDCTL_*`` variables;
the defaults work on one machine with nothing else installed.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class OpenADR3Settings:
    """An OpenADR 3.0.1 VEN polling ``GET /events`` with OAuth2 client credentials."""

    vtn_url: str
    client_id: str | None = None
    client_secret: str | None = None
    #: default: ``<vtn_url>/auth/token``
    token_url: str | None = None
    poll_interval_s: float = 30.0
    page_size: int = 50
    priority: int = 2
    #: VEN name: events targeted at it map to every zone (like a 2.0b ven_id).
    ven_name: str | None = None


@dataclass(frozen=True)
class BridgeSettings:
    """Everything the bridge needs; ``data_dir`` holds the revision store and the token."""

    data_dir: Path = Path(".gridctl")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    #: accepted bearer tokens; empty means "the token in <data_dir>/api-token" (embedded run)
    api_tokens: tuple[str, ...] = ()
    #: zones accepted even without stations (besides those learned from config.station_zones)
    extra_zones: tuple[str, ...] = ()
    simple_levels: dict[int, tuple[str, float]] = field(
        default_factory=lambda: dict(DEFAULT_SIMPLE_LEVELS)
    )
    #: how long the API waits for the bus to confirm a record before answering 503
    confirm_timeout_s: float = 10.0
    openadr2: OpenADR2Settings | None = None
    openadr3: OpenADR3Settings | None = None


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
