"""HotCounter/HotHistogram expose exactly what prometheus_client's own metrics do."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ocpp_gateway.hotmetrics import HotCounter, HotHistogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
VALUES = (0.0005, 0.0007, 0.001, 3.0, 10.0, 0.0)


def exposition(hot: bool) -> str:
    r = CollectorRegistry()
    counter, histogram = (HotCounter, HotHistogram) if hot else (Counter, Histogram)
    messages = counter("t_messages", "doc", ["action", "version"], registry=r)
    acks = histogram("t_ack_seconds", "doc", ["action"], buckets=BUCKETS, registry=r)
    readings = counter("t_readings", "doc", registry=r)
    publish = histogram("t_publish_seconds", "doc", buckets=BUCKETS, registry=r)
    for v in VALUES:
        messages.labels("MeterValues", "1.6").inc()
        acks.labels("MeterValues").observe(v)
        acks.labels("Heartbeat").observe(v / 3)
        publish.observe(v)
        readings.inc(2)
    text = generate_latest(r).decode()
    return re.sub(r"^(\S+_created\S*) \S+$", r"\1 T", text, flags=re.M)  # clock values


def test_the_exposition_is_prometheus_clients() -> None:
    assert exposition(hot=True) == exposition(hot=False)


def test_buckets_hold_what_was_observed() -> None:
    text = exposition(hot=True)
    # 0.0005 and 0.0 are <= 0.0005; 0.0007 and 0.001 too are <= 0.001; 3 <= 5; 10 only +Inf
    assert 't_publish_seconds_bucket{le="0.0005"} 2.0' in text
    assert 't_publish_seconds_bucket{le="0.001"} 4.0' in text
    assert 't_publish_seconds_bucket{le="5.0"} 5.0' in text
    assert 't_publish_seconds_bucket{le="+Inf"} 6.0' in text
    assert "t_publish_seconds_sum 13.0022" in text  # 0.0005 + 0.0007 + 0.001 + 3 + 10
    assert "t_readings_total 12.0" in text
    assert 't_messages_total{action="MeterValues",version="1.6"} 6.0' in text


def test_wrong_use_is_refused() -> None:
    r = CollectorRegistry()
    c = HotCounter("u", "doc", ["a"], registry=r)
    with pytest.raises(ValueError):
        c.labels("x", "y")
    with pytest.raises(ValueError):
        c.labels("x").inc(-1)
    with pytest.raises(ValueError):
        HotHistogram("h", "doc", buckets=(1.0, 0.5), registry=r)
