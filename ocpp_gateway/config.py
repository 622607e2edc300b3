"""Settings of the gateway: one frozen dataclass, defaults that work on one machine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    #: bind with SO_REUSEPORT, so several gateway processes share one port and the kernel
    #: spreads connections among them (Linux, BSD; each applies commands only to its own
    #: connections, so they need a bus between them and the engine: Kafka)
    reuse_port: bool = False
    #: this process's place among the gateway workers sharing the port (``gridctl run
    #: --gateway-workers``): 1.6 transaction ids of worker i of n are i mod n, so two
    #: workers never hand a charger the same id; ``instance`` names it in
    #: ``ocpp.station_status`` (None: ``w<worker_index>``)
    worker_index: int = 0
    workers: int = 1
    instance: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    allow_unknown_stations: bool = False
    #: seconds between clock records on ocpp.command_results (ocpp_gateway.clock), so that
    #: acknowledgement windows close on time; None: none
    result_clock_s: float | None = 5.0
    #: seconds between the INFO lines that count the commands' answers (one line per
    #: interval, not per charger: ocpp_gateway.outcomes); each answer is a DEBUG line
    outcome_log_s: float = 10.0
    ping_interval: float | None = 60.0
    ping_timeout: float | None = 60.0
    #: largest frame accepted (1009 above): a 1.6 MeterValues of a 3-phase charger with
    #: 10 timestamped samples of 9 values is ~9 KB; 64 KiB leaves room, 256 KB let one
    #: charger hold the event loop for milliseconds per frame
    max_size: int = 64 * 1024
    #: per-connection budget, checked before a frame is parsed: messages and bytes per
    #: second (sustained) and burst; a charger over it is read more slowly (TCP pushes
    #: back), and one still over it after ``budget_disconnect_s`` is closed with 1008;
    #: the byte burst is at least ``max_size`` (one whole frame always fits)
    #: A real charger sends one call and waits for the answer (a few per minute; a queue
    #: flush after an outage is paced by our answers); ten connections at these rates
    #: together cost less CPU than 100 chargers sampling every 0.2 s (the fuzz drill).
    budget_msgs_per_s: float = 20.0
    budget_msgs_burst: float = 80.0
    #: a MeterValues every 10 s is < 1 KB/s; work grows with bytes (one reading per
    #: sample), so a flood of valid 60 KB frames is bounded by this, not by messages/s
    budget_bytes_per_s: float = 16 * 1024
    budget_bytes_burst: float = 64 * 1024
    #: long enough for a charger flushing ~1,000 queued messages to finish slowed
    budget_disconnect_s: float = 60.0
    #: bearer tokens that may read ``/metrics`` on this port (it names signal ids): the
    #: API's tokens; a callable is asked on each scrape (the API's token may be generated
    #: after the gateway started). Empty: ``/metrics`` answers 401 to everyone.
    metrics_tokens: Sequence[str] | Callable[[], Sequence[str]] = ()
    #: where verified credentials are remembered across restarts (None: memory only)
    state_dir: str | None = None
    #: password checks (scrypt, ~40 ms of CPU each) running at once; more queue ...
    verify_slots: int = 64
    #: ... for up to this long before a 503
    verify_wait_s: float = 10.0
    close_timeout: float = 10.0
    #: seconds a MeterValues/TransactionEvent may wait for the bus before a CallError
    ack_timeout: float = 5.0
    #: at start, how long to wait for the first records of the config and command topics
    #: (a Kafka consumer's first fetch takes a moment; an empty topic costs this once)
    startup_read_s: float = 1.0
    #: heartbeat interval told to chargers in the BootNotification answer
    heartbeat_interval: float = 300.0
    #: publish an ``Offline`` command result for stations not connected here (one
    #: instance; of several workers, worker 0, which asks the status topic first)
    report_offline: bool = True
    #: with several workers, how long a command for a station nobody holds waits before
    #: ``Offline``: the holder's ``Connected`` may be a moment behind the command
    offline_grace_s: float = 2.0
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
    #: a charger timestamp further behind our clock than this (or ahead by more than 1 s)
    #: is replaced by the received time (the charger's is kept in ``charger_ts``):
    #: ``--max-clock-skew``; keep it below the migrations' ``watermark_seconds`` (10 s)
    max_clock_skew_s: float = 5.0
    #: readings above a station's ``max_station_kw`` times this are refused as impossible
    max_power_factor: float = 1.5

    def __post_init__(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("wss needs both certfile and keyfile")
        if not 0 <= self.worker_index < self.workers:
            raise ConfigError("worker_index must be within 0 .. workers - 1")
        if self.ack_timeout <= 0:
            raise ConfigError("ack_timeout must be positive")
        if self.verify_slots < 1:
            raise ConfigError("verify_slots must be at least 1")
        if self.max_size < 1024:
            raise ConfigError("max_size below 1 KiB cannot carry a MeterValues")
        if min(self.budget_msgs_per_s, self.budget_bytes_per_s, self.budget_msgs_burst) <= 0:
            raise ConfigError("budget rates and bursts must be positive")
        if not self.max_clock_skew_s > 0:
            raise ConfigError("max_clock_skew_s must be positive")
        if not self.max_power_factor >= 1:
            raise ConfigError("max_power_factor must be at least 1")
        if not self.outcome_log_s > 0:
            raise ConfigError("outcome_log_s must be positive (seconds between log lines)")

    @property
    def name(self) -> str:
        """This gateway's name in station status records."""
        return self.instance or f"w{self.worker_index}"

    @property
    def tls(self) -> bool:
        return self.certfile is not None
