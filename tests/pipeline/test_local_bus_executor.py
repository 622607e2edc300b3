"""LocalBus's fsync does not wait behind other users of the default thread pool.

Found by the reconnect-storm drill: thousands of scrypt password checks
(``asyncio.to_thread``) filled the default executor, the WAL's fsync queued behind them
and the gateway refused MeterValues acknowledgements for minutes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from pipeline.bus import LocalBus


async def test_wal_publish_resolves_while_default_executor_is_saturated(tmp_path: Path) -> None:
    release = threading.Event()
    loop = asyncio.get_running_loop()
    # More blocked jobs than the default executor has threads: anything queued behind them
    # would wait until ``release`` is set.
    blockers = [
        loop.run_in_executor(None, release.wait)
        for _ in range(min(32, (os.cpu_count() or 1) + 4) * 2)
    ]
    bus = LocalBus(tmp_path / "bus", publish_timeout=30.0)
    await bus.start()
    try:
        await asyncio.wait_for(bus.publish("ocpp.meter_values", "cs-1", b"{}"), timeout=20.0)
        assert not any(b.done() for b in blockers), "published only after the blockers ended"
    finally:
        release.set()
        await asyncio.gather(*blockers)
        await bus.stop()
    assert (tmp_path / "bus" / "bus.log").read_bytes().count(b"\n") == 1
