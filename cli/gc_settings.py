"""The cyclic garbage collector's settings for a long-running gridctl process.

Two findings, both pauses of the one event loop every charger shares:

- A full collection walked the ~10^5 objects built by imports and startup and stopped
  the loop for 25-60 ms (the fuzz drill, tests/drills/test_fuzz_load.py): what startup
  built lives as long as the process, so it is frozen out of the collector's reach.
- With CPython's default young-generation threshold (700 allocations), a DR event's
  5,000 in-flight commands (a task, a coroutine, a future, a payload each, alive for the
  ~1 s delivery takes) outlived two young collections and were promoted to the oldest
  generation, which then filled by a quarter and was collected in full two or three
  times per event: ~0.45 s each over the ~6*10^5 objects of 5,000 connections, about
  half of the gateway's CPU for the event (bench/dr_delivery.py). At 50,000 the young
  generation is collected ~70x less often, the commands die young, and no full
  collection runs during delivery. The cost is up to 50,000 young objects (a few MB)
  waiting a little longer, and ~40 ms per young collection instead of ~0.3 ms.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle"]

#: allocations (minus deallocations) of container objects between young collections
YOUNG_THRESHOLD = 50_000


def settle() -> None:
    """Call once the process has started everything: freeze, then raise the threshold."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
