"""``Runtime.start()`` freezes what startup built out of the cyclic GC's reach.

Found by the fuzz drill (tests/drills/test_fuzz_load.py): full collections walked the
~10^5 objects of imports and startup and stopped the event loop for tens of ms, which set
the well-behaved chargers' ack p99 (14x the quiet run under paced fuzz; 1.2x frozen).
"""

from __future__ import annotations

import gc
from pathlib import Path

from cli.runtime import RunSettings, Runtime
from pipeline.embedded_pg import free_port


async def test_start_freezes_startup_objects(tmp_path: Path, postgres: str) -> None:
    gc.unfreeze()
    runtime = Runtime(
        RunSettings(
            data_dir=tmp_path / "data",
            database_url=postgres,
            ocpp_port=free_port(),
            api_port=free_port(),
        )
    )
    try:
        await runtime.start()
        assert gc.get_freeze_count() > 10_000
    finally:
        await runtime.stop()
        gc.unfreeze()
