"""Settings of the gateway: one frozen dataclass, defaults that work on one machine."""

from __future__ import annotations

from dataclasses import dataclass

from ocpp_gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What ``gridctl run`` passes to :class:`~ocpp_gateway.gateway.Gateway`.

    ``port=0`` picks a free port (read it back from ``Gateway.port``). Pings are generous
    (60 s / 60 s): many chargers answer pings slowly or on a cellular link, and the
    websockets default (20 s / 20 s) makes them reconnect every ~40 s.
    """

    host: str = "127.0.0.1"
    port: int = 9000
    certfile: str | None = None
    keyfile: str | None = None
    allow_unknown_stations: bool = False
    ping_interval: float | None = 60.0
    ping_timeout: float | None = 60.0
    max_size: int = 256 * 1024
    close_timeout: float = 10.0
    #: seconds a MeterValues/TransactionEvent may wait for the bus before a CallError
    ack_timeout: float = 5.0
    #: at start, how long to wait for the first records of the config and command topics
    #: (a Kafka consumer's first fetch takes a moment; an empty topic costs this once)
    startup_read_s: float = 1.0
    #: heartbeat interval told to chargers in the BootNotification answer
    heartbeat_interval: float = 300.0
    #: publish an ``Offline`` command result for stations not connected here (one instance)
    report_offline: bool = True
    #: accept at most this many BootNotifications per second (None: no limit); the rest
    #: are answered Pending, to retry after ``boot_retry_s`` .. 2 x ``boot_retry_s``
    boot_rate_per_s: float | None = None
    boot_retry_s: float = 30.0
    #: ask chargers for allowed rate units / max stack level before the first profile
    query_capabilities: bool = True
    #: seconds to wait for that answer before using defaults
    capability_timeout: float = 5.0
    #: seconds to wait for a charger's answer to our calls
    response_timeout: float = 30.0
    #: seconds graceful shutdown lets in-flight calls finish
    shutdown_grace: float = 5.0
    #: validate incoming payloads against the OCPP JSON schemas (compiled)
    validate: bool = True
    #: command deadband: a target that moved by no more than max(threshold_kw,
    #: deadband_pct % of the target) is not a new profile (docs/control-law.md §6) ...
    threshold_kw: float = 1.0
    deadband_pct: float = 5.0
    #: ... but the same profile is sent again after this many seconds (a charger that
    #: lost it gets it back)
    min_interval_s: float = 300.0
    #: a raise waits this long after the last profile change of the station (a lower
    #: target, a new end or a new priority goes out at once: the cap needs it)
    change_interval_s: float = 30.0
    #: how far in the past a profile's startSchedule lies (clock skew on chargers)
    start_offset_s: int = 60

    def __post_init__(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("wss needs both certfile and keyfile")
        if self.ack_timeout <= 0:
            raise ConfigError("ack_timeout must be positive")

    @property
    def tls(self) -> bool:
        return self.certfile is not None
