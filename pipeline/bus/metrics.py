"""Prometheus metrics of the bus (names from ``pipeline.metrics_names``)."""

from __future__ import annotations

from prometheus_client import Counter

from pipeline import metrics_names
from pipeline.prometheus import metric

#: Records a reader had taken (committed or stored) beyond the end of the log: lost with
#: the log's tail. The reader was moved back to the end so that new records are read.
OFFSETS_BEYOND_LOG = metric(
    Counter,
    metrics_names.BUS_OFFSETS_BEYOND_LOG,
    "Records a reader had committed past the end of the log (lost with the log's tail); "
    "the reader was moved back to the end.",
    labelnames=["topic", "reader"],
)
