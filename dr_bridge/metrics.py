"""The bridge's Prometheus metrics, in the default registry so ``/metrics`` shows all.

Names come from :mod:`pipeline.metrics_names`; created once, at import.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from pipeline import metrics_names

DR_SIGNALS = Counter(
    metrics_names.DR_SIGNALS.removesuffix("_total"),
    "DR signal revisions confirmed on the bus",
    ["source", "signal_type"],
)
DR_PUBLISH_RETRIES = Counter(
    metrics_names.DR_PUBLISH_RETRIES.removesuffix("_total"),
    "publish attempts of DR signals that failed and were retried",
)
DR_CONFIRM_SECONDS = Histogram(
    metrics_names.DR_CONFIRM_SECONDS,
    "DR signal accepted -> confirmed on the bus",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
