"""Prometheus metrics of one gateway, in their own registry.

A registry per gateway (not the process-global one) so that tests and a benchmark can
run several gateways in one process; ``render()`` gives the text format served on
``/metrics`` of the gateway's own port. Names come from ``pipeline.metrics_names``.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ocpp_gateway.hotmetrics import HotCounter, HotHistogram
from pipeline import metrics_names as names

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    """The gateway's counters; every attribute is a prometheus_client metric."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connected = Gauge(
            names.OCPP_CONNECTED_STATIONS, "Stations with an open websocket", registry=r
        )
        # the four updated per message are HotCounter/HotHistogram (plain numbers, same
        # exposition): prometheus_client's locks were ~5 µs of every MeterValues
        self.messages = HotCounter(
            names.OCPP_MESSAGES,
            "OCPP calls received, by action and version",
            ["action", "version"],
            registry=r,
        )
        self.frame_errors = Counter(
            names.OCPP_CALL_ERRORS,
            "Incoming frames answered with a CallError, by code",
            ["code"],
            registry=r,
        )
        self.publish_seconds = HotHistogram(
            names.BUS_PUBLISH_SECONDS, "Bus publish until durable", buckets=_FAST, registry=r
        )
        self.ack_seconds = HotHistogram(
            names.OCPP_ACK_SECONDS,
            "Time from a charger's Call read to our CallResult written, by action",
            ["action"],
            buckets=_FAST,
            registry=r,
        )
        self.acks_refused = Counter(
            names.OCPP_ACKS_REFUSED,
            "CallErrors sent because the bus did not confirm in time",
            registry=r,
        )
        self.commands = Counter(
            names.COMMAND_RESULTS, "Command attempts by outcome", ["status"], registry=r
        )
        self.command_seconds = Histogram(
            names.COMMAND_LATENCY_SECONDS, "Command round trip", buckets=_SLOW, registry=r
        )
        self.readings = HotCounter(
            names.READINGS_INGESTED, "Meter value records published", registry=r
        )
        self.ack_rate = Gauge(
            names.COMMAND_ACK_RATE,
            "Share of SetChargingProfile attempts Accepted, per signal, since this gateway started",
            ["signal_id"],
            registry=r,
        )
        self._acks: dict[str, list[int]] = {}
        self.clock_skew = Counter(
            names.OCPP_CLOCK_SKEW,
            "Readings whose charger timestamp was beyond the skew bound (stored with the "
            "received time as event_ts), by station",
            ["station_id"],
            registry=r,
        )
        self.budget = Counter(
            names.OCPP_BUDGET_EXCEEDED,
            "Frames over a connection's message/byte budget: slowed, or the connection "
            "disconnected (1008)",
            ["outcome"],
            registry=r,
        )
        self.readings_refused = Counter(
            names.READINGS_REFUSED,
            "Meter value records answered with a CallError (the charger retries them)",
            ["reason"],
            registry=r,
        )
        self.readings_ignored = Counter(
            names.READINGS_IGNORED,
            "Calls acknowledged whose readings were not published: for a transaction that "
            "had ended, or one whose connector/EVSE is not known, by reason",
            ["reason"],
            registry=r,
        )

    def command_outcome(self, signal_id: str | None, action: str, status: str) -> None:
        """Count one profile attempt towards its signal's acknowledgement rate."""
        if signal_id is None or action != "SetChargingProfile":
            return
        accepted, total = self._acks.setdefault(signal_id, [0, 0])
        accepted += status == "Accepted"
        total += 1
        self._acks[signal_id] = [accepted, total]
        self.ack_rate.labels(signal_id).set(accepted / total)

    def render(self) -> bytes:
        """The Prometheus text exposition of this gateway's metrics."""
        return generate_latest(self.registry)
