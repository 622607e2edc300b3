"""Serve an ASGI app with uvicorn inside the running asyncio loop.

``gridctl run`` runs the gateway, the bridge and the engine in one loop, so the API
cannot own the loop or the signals: :class:`ApiServer` starts uvicorn as a task, leaves
Ctrl-C to the caller, and stops on request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The host process handles signals and calls ApiServer.stop().
        yield


class ApiServer:
    """``await start()`` returns once the socket listens; ``port`` is the bound port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8080) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="api-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (port in use, ...)
                raise RuntimeError("API server stopped before it started")
            await asyncio.sleep(0.01)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
