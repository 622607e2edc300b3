"""A real bridge API served by uvicorn on a free loopback port, in a background thread.

The CLI tests call it synchronously (typer's CliRunner), so the bridge, its LocalBus and
the server run in their own event loop on another thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr_bridge import Bridge, BridgeSettings
from pipeline import topics
from pipeline.bus import LocalBus
from pipeline.contracts import decode_topic


@dataclass
class LiveApi:
    url: str
    data_dir: Path
    bridge: Bridge
    bus: LocalBus
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def latest(self, topic: str) -> dict[str, Any]:
        """Latest record per key of an upsert topic, decoded (None for tombstones)."""

        async def read() -> dict[str, Any]:
            sub = self.bus.subscribe([topic])
            records = await sub.batch(max_records=100_000, timeout=0)
            await sub.close()
            return {
                r.key: None if r.value is None else decode_topic(topic, r.value) for r in records
            }

        return self.run(read())  # type: ignore[no-any-return]

    def signals(self) -> dict[str, Any]:
        return self.latest(topics.DEMAND_RESPONSE)


@contextmanager
def live_api(tmp_path: Path, **settings: Any) -> Iterator[LiveApi]:
    """Start bus + bridge (generated token in ``tmp_path/data``) on port 0; stop after."""
    loop = asyncio.new_event_loop()
    ready: Future[LiveApi] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            bus = LocalBus(tmp_path / "bus")
            await bus.start()
            data_dir = tmp_path / "data"
            bridge = Bridge(bus, BridgeSettings(data_dir=data_dir, port=0, **settings))
            await bridge.start()
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(LiveApi(bridge.api_url or "", data_dir, bridge, bus, loop))
        await stop.wait()
        await bridge.stop()
        await bus.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
