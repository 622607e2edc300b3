"""Publisher: retried with backoff until confirmed; a signal's revisions never reorder."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dr_bridge.errors import NotConfirmed
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore
from pipeline.contracts import DemandResponseSignal
from tests.dr_bridge.conftest import RecordingBus

NOW = datetime.now(UTC)


def sig(modification: int) -> DemandResponseSignal:
    return DemandResponseSignal(
        signal_id="p-1",
        modification=modification,
        zone_id="z",
        signal_type="CURTAIL",
        zone_limit_kw=10 + modification,
        start_ts=NOW,
        end_ts=NOW + timedelta(hours=1),
        received_ts=NOW,
    )


async def test_revisions_of_one_signal_reach_the_bus_in_order(
    bus: RecordingBus, tmp_path: Path
) -> None:
    store = RevisionStore(tmp_path)
    publisher = Publisher(bus, store, backoff_initial_s=0.01)
    bus.fail_next = 2  # the first revision fails twice before it gets through
    records = [store.commit_revision("api", "p-1", m, "", str(m), [sig(m)])[0] for m in range(3)]
    await asyncio.gather(*(publisher.send([r], timeout=10) for r in records))
    assert [s.modification for s in bus.published] == [0, 1, 2]
    assert store.pending() == []
    store.close()


async def test_an_older_revision_is_not_published_after_a_newer_one(
    bus: RecordingBus, tmp_path: Path
) -> None:
    store = RevisionStore(tmp_path)
    publisher = Publisher(bus, store)
    old = store.commit_revision("api", "p-1", 0, "", "0", [sig(0)])[0]
    new = store.commit_revision("api", "p-1", 1, "", "1", [sig(1)])[0]
    await publisher.send([new], timeout=10)
    await publisher.send([old], timeout=10)  # e.g. left over from a crash
    assert [s.modification for s in bus.published] == [1]
    assert store.pending() == []
    store.close()


async def test_not_confirmed_in_time_stays_queued(bus: RecordingBus, tmp_path: Path) -> None:
    store = RevisionStore(tmp_path)
    publisher = Publisher(bus, store, backoff_initial_s=0.01, backoff_max_s=0.05)
    bus.fail_next = 10**9
    record = store.commit_revision("api", "p-1", 0, "", "0", [sig(0)])[0]
    with pytest.raises(NotConfirmed):
        await publisher.send([record], timeout=0.1)
    assert [s.modification for s in store.pending()] == [0]
    bus.fail_next = 0
    await publisher.send([record], timeout=10)  # joins the retry already under way
    assert [s.modification for s in bus.published] == [0]
    assert store.pending() == []
    store.close()
