"""KeyedLock: one holder per key, FIFO, other keys in parallel, nothing left behind."""

from __future__ import annotations

import asyncio

from dr_bridge.locks import KeyedLock


async def test_same_key_serialises_other_keys_do_not_and_locks_are_dropped() -> None:
    locks = KeyedLock()
    order: list[str] = []
    gate = asyncio.Event()

    async def hold(key: str, name: str, wait: bool) -> None:
        async with locks(key):
            order.append(f"{name}+")
            if wait:
                await gate.wait()
            order.append(f"{name}-")

    first = asyncio.create_task(hold("a", "a1", True))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("a", "a2", False))
    other = asyncio.create_task(hold("b", "b1", False))
    await other  # "b" is not blocked by "a"
    assert order == ["a1+", "b1+", "b1-"]
    gate.set()
    await asyncio.gather(first, second)
    assert order == ["a1+", "b1+", "b1-", "a1-", "a2+", "a2-"]
    assert len(locks) == 0
