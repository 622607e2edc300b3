"""A group-less Kafka subscription reads partitions that appear after it started.

Found by the broker-outage drill: Tansu re-created its lost topics with 4 partitions and
the gateway's command reader (group-less, assigned once at start) read a quarter of the
commands. The same happens on any Kafka whose topic gains partitions, or whose topic is
created after the subscription (here: auto-created by the first publish, 4 partitions).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from pipeline.bus import KafkaBus, kafka_subscription

pytestmark = pytest.mark.timeout(120)


async def test_group_less_subscription_reads_partitions_created_later(
    own_tansu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_subscription, "PARTITION_REFRESH_S", 0.2)
    topic = f"drill.later.{uuid.uuid4().hex[:8]}"  # does not exist yet
    keys = {f"k-{i}" for i in range(40)}
    async with KafkaBus(own_tansu.bootstrap, config=dict(own_tansu.client_config)) as bus:
        sub = bus.subscribe([topic], group=None, from_beginning=True)
        assert await sub.batch(10, timeout=0.5) == []
        for key in sorted(keys):
            await bus.publish(topic, key, b"{}")
        records = []
        deadline = time.monotonic() + 30
        while {r.key for r in records} != keys and time.monotonic() < deadline:
            records += await sub.batch(100, timeout=0.5)
        await sub.close()
    assert {r.key for r in records} == keys
    assert len({r.partition for r in records}) > 1
