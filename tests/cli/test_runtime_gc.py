"""``Runtime.start()`` settles the cyclic GC (cli/gc_settings.py) once everything runs.

Found by the fuzz drill (tests/drills/test_fuzz_load.py): full collections walked the
~10^5 objects of imports and startup and stopped the event loop for tens of ms, which set
the well-behaved chargers' ack p99 (14x the quiet run under paced fuzz; 1.2x frozen).
Found by bench/dr_delivery.py: at the default young threshold (700) a DR event's in-flight
commands were promoted and set off full collections of every connection's objects, ~0.45 s
each, two or three per 5,000-charger event.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import gc_settings
from cli.runtime import RunSettings, Runtime
from pipeline.embedded_pg import free_port


@pytest.fixture
def default_gc() -> Iterator[None]:
    """CPython's defaults before the test, and the process's settings back after it."""
    saved = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


async def test_start_settles_the_gc(tmp_path: Path, postgres: str, default_gc: None) -> None:
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
        assert gc.get_threshold() == (50_000, 10, 10)
    finally:
        await runtime.stop()


def test_settle_keeps_young_objects_out_of_the_old_generation(default_gc: None) -> None:
    """What the threshold is for: 20,000 objects alive across 10,000 allocations.

    At 700 they outlive young collections and reach the oldest generation; at 50,000 no
    collection runs while they live, so they are still young when they die.
    """

    def promoted() -> int:
        gc.collect()
        gc.freeze()  # count from an empty oldest generation
        alive = [[i] for i in range(20_000)]  # in flight, like commands awaiting answers
        churn = [[i] for i in range(10_000)]  # what the loop allocates meanwhile
        old_ids = {id(o) for o in gc.get_objects(generation=2)}
        old = sum(id(o) in old_ids for o in alive)
        del alive, churn
        gc.unfreeze()
        return old

    before = promoted()
    gc_settings.settle()
    assert gc.get_threshold()[0] == gc_settings.YOUNG_THRESHOLD
    after = promoted()
    assert (before, after) == (20_000, 0)
