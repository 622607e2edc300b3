"""The engine's own loop survives losing its database: it reconnects, loses no record.

A real PostgreSQL behind a TCP relay this test controls: cutting the relay closes the
engine's connection and refuses new ones (what a restarted or unreachable server does),
so the engine's reconnects fail for a while; then the relay opens again. Meter values
published during the outage must all be in the engine's table afterwards: the batch taken
from the bus by the tick that failed is not skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline.engine import Engine
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(120)


class Relay:
    """A TCP relay to ``host:port`` that can be cut (connections closed, new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}


async def _until(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_engine_reconnects_and_loses_nothing(postgres: str) -> None:
    params = conninfo_to_dict(postgres)
    host = params.get("host") or urlsplit(postgres).hostname or "127.0.0.1"
    relay = Relay(host, int(params.get("port") or 5432))
    await relay.open()
    async with Harness(postgres) as h:
        await h.engine.stop()
        await h.station("A", "Z1")
        engine = Engine(
            make_conninfo(postgres, host="127.0.0.1", port=str(relay.port)),
            h.bus,
            clock=h.clock,
            tick=0.05,
        )
        h.engine = engine
        await engine.start()
        await _until(lambda: engine.ticks >= 2, "first ticks")

        await relay.cut()
        for t in range(5):  # published while the database is unreachable
            await h.sample("A", 1, 7.0, -10 + t)
        before = engine.ticks
        await asyncio.sleep(0.5)  # several ticks' worth of failed reconnects
        assert engine.ticks == before  # no tick completed without a database

        await relay.open()
        await _until(lambda: engine.ticks >= before + 3, "ticks after the outage")
        rows = h.query("SELECT count(*) FROM meter_values WHERE station_id = 'A'")
        assert rows == [(5,)]
    await relay.cut()
