"""Counters and histograms for the per-message path: plain numbers, exposed on collect.

prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock and check
exemplars on every call; on the receive path (a message counter, an ack histogram, a
publish histogram and a readings counter per MeterValues) that was ~5 µs of a ~110 µs
message. The gateway updates them from its event loop thread only, so these keep plain
Python numbers and build the same metric families (names, labels, buckets, ``_created``)
when the registry is collected. Everything else in :mod:`ocpp_gateway.metrics` stays a
prometheus_client metric.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

__all__ = ["HotCounter", "HotHistogram"]


class _CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # bucket ``le=b`` counts values <= b: the first bound not below ``amount``
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class _Hot(Collector):
    """Children by label values; without labels, the metric is its own only child."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}
        if not self.labelnames:
            self._only = self._child(())
        registry.register(self)

    def _new(self) -> object:
        raise NotImplementedError

    def _child(self, values: tuple[str, ...]) -> object:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new()
        return child

    def labels(self, *values: str) -> object:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        return self._child(tuple(str(v) for v in values))


class HotCounter(_Hot):
    """A counter (exposed as ``<name>_total`` and ``<name>_created``, as prometheus_client
    does)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _new(self) -> _CounterChild:
        return _CounterChild()

    def labels(self, *values: str) -> _CounterChild:  # type: ignore[override]
        return super().labels(*values)  # type: ignore[return-value]

    def inc(self, amount: float = 1.0) -> None:
        self._only.inc(amount)  # type: ignore[attr-defined]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value, created=child.created)  # type: ignore[attr-defined]
        yield family


class HotHistogram(_Hot):
    """A histogram with fixed buckets (``+Inf`` added), cumulative on exposition."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(bounds) != sorted(bounds):
            raise ValueError("buckets must be sorted")
        self._bounds = bounds
        super().__init__(name, documentation, labelnames, registry)

    def _new(self) -> _HistogramChild:
        return _HistogramChild(self._bounds)

    def labels(self, *values: str) -> _HistogramChild:  # type: ignore[override]
        return super().labels(*values)  # type: ignore[return-value]

    def observe(self, amount: float) -> None:
        self._only.observe(amount)  # type: ignore[attr-defined]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        names = [_le(b) for b in self._bounds] + ["+Inf"]
        for values, child in list(self._children.items()):
            running, buckets = 0, []
            for le, count in zip(names, child.counts, strict=True):  # type: ignore[attr-defined]
                running += count
                buckets.append((le, running))
            family.add_metric(values, buckets, child.sum)  # type: ignore[attr-defined]
            labels = dict(zip(self.labelnames, values, strict=True))
            family.samples.append(Sample(f"{self.name}_created", labels, child.created))  # type: ignore[attr-defined]
        yield family


def _le(bound: float) -> str:
    """The ``le`` label as prometheus_client writes it (``0.005``, ``1.0``)."""
    return repr(float(bound))
